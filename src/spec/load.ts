/** Reading a spec from YAML: every problem comes back with its field path and what was expected. */
import YAML from 'yaml';
import { SPEC_LIMITS, utf8Bytes } from './limits';
import { readBoundedFileSync } from './read-file';
import type { SpecIssue } from './types';
import { type SpecResult, validateSpec } from './validate';

export { validateSpec };

export type { SpecResult };

export class SpecValidationError extends Error {
  constructor(readonly issues: SpecIssue[]) {
    super(`invalid spec:\n${formatIssues(issues)}`);
  }
}

/**
 * The first line of a yaml error (prettyErrors adds the source excerpt below it), without the
 * colon that introduced the excerpt; the parser's own stack overflow said as what it means.
 */
function yamlErrorLine(message: string): string {
  const first = message.split('\n')[0].replace(/:\s*$/, '');
  return first.replace(/^(?:RangeError: )?Maximum call stack size exceeded/, TOO_DEEP);
}

const TOO_DEEP = 'nested too deeply to read (a spec needs a few levels)';
/** A broken document can give hundreds of parse errors; the first few say what is wrong. */
const YAML_ERRORS_SHOWN = 10;

export function parseSpec(yamlText: string): SpecResult {
  if (utf8Bytes(yamlText) > SPEC_LIMITS.specBytes) {
    return { ok: false, issues: [{ path: '(file)', message: `expected a spec of at most ${SPEC_LIMITS.specBytes / 1024} KiB, got ${Math.ceil(utf8Bytes(yamlText) / 1024)} KiB` }] };
  }
  const doc = YAML.parseDocument(yamlText, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const lines = doc.errors.map((e) => yamlErrorLine(e.message));
    // A stack overflow is reported once per level the parser unwinds: the deepest one says it all.
    const tooDeep = lines.find((l) => l.startsWith(TOO_DEEP));
    const shown = tooDeep ? [tooDeep] : [...new Set(lines)].slice(0, YAML_ERRORS_SHOWN);
    return { ok: false, issues: shown.map((message) => ({ path: '(yaml)', message })) };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: SPEC_LIMITS.yamlAliases });
  } catch (err) {
    // The yaml library refuses a document whose aliases expand too far (a "billion laughs").
    const message = err instanceof Error ? err.message : String(err);
    return { ok: false, issues: [{ path: '(yaml)', message: /alias/i.test(message) ? `too many alias expansions (at most ${SPEC_LIMITS.yamlAliases}): ${message}` : message }] };
  }
  return validateSpec(value);
}


/**
 * Reads and validates a spec file. Only a regular file of at most SPEC_LIMITS.specBytes is read,
 * and never more than that (see read-file.ts): `/dev/urandom`, a FIFO or a directory is refused
 * at once instead of being read forever.
 */
export async function loadSpecFile(file: string): Promise<SpecResult> {
  const limitKiB = SPEC_LIMITS.specBytes / 1024;
  const read = readBoundedFileSync(file, SPEC_LIMITS.specBytes);
  if (!read.ok) {
    const message =
      'notRegular' in read
        ? `expected a regular file, ${file} is ${read.notRegular}`
        : 'tooLarge' in read
          ? `expected a spec of at most ${limitKiB} KiB, ${file} has ${read.size === undefined ? 'more' : `${Math.ceil(read.size / 1024)} KiB`}`
          : `cannot read ${file}: ${read.code}`;
    return { ok: false, issues: [{ path: '(file)', message }] };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(read.bytes);
  } catch {
    return { ok: false, issues: [{ path: '(file)', message: `${file} is not UTF-8 text` }] };
  }
  return parseSpec(text);
}

/** One line per issue: `  rollout.max_surge: expected …`. */
export function formatIssues(issues: SpecIssue[]): string {
  return issues.map((i) => `  ${i.path}: ${i.message}`).join('\n');
}
