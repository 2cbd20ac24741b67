/**
 * A small, strict reader of the Prometheus text exposition format (version 0.0.4, what the
 * router and prom-client write): the sample lines of the metrics asked for, with their labels
 * unescaped. Comments, blank lines and other metrics are skipped; a malformed line of a
 * wanted metric is an error, not a guess.
 *
 *   rollout_router_requests_total{service="llm",version="2",code="5xx"} 3
 *   → { name: 'rollout_router_requests_total', labels: { service: 'llm', version: '2', code: '5xx' }, value: 3 }
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export class MetricsFormatError extends Error {
  override name = 'MetricsFormatError';
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const FLOAT = /^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/;
const ESCAPES: Record<string, string> = { '\\': '\\', '"': '"', n: '\n' };

/** The samples of the metrics named in `wanted`, in the order they appear. */
export function parseSamples(text: string, wanted: ReadonlySet<string>): Sample[] {
  const samples: Sample[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const name = NAME.exec(line)?.[0];
    if (!name) throw new MetricsFormatError(`line ${index + 1}: expected a metric name: ${line.slice(0, 120)}`);
    if (!wanted.has(name)) continue;
    try {
      samples.push(parseSample(name, line.slice(name.length)));
    } catch (err) {
      throw new MetricsFormatError(`line ${index + 1}: ${(err as Error).message}: ${line.slice(0, 200)}`);
    }
  }
  return samples;
}

/** `rest` is what follows the name: `{labels} value [timestamp]` or ` value [timestamp]`. */
function parseSample(name: string, rest: string): Sample {
  const labels = new Map<string, string>();
  let i = 0;
  if (rest[i] === '{') {
    i++;
    for (;;) {
      while (rest[i] === ' ') i++;
      if (rest[i] === '}') break;
      const label = LABEL_NAME.exec(rest.slice(i))?.[0];
      if (!label) throw new Error(`expected a label name at column ${i}`);
      i += label.length;
      if (rest[i] !== '=' || rest[i + 1] !== '"') throw new Error(`expected ="…" after label ${label}`);
      i += 2;
      let value = '';
      for (;;) {
        const c = rest[i++];
        if (c === undefined) throw new Error(`label ${label}: unterminated value`);
        if (c === '"') break;
        if (c === '\\') {
          const escaped = ESCAPES[rest[i++] ?? ''];
          if (escaped === undefined) throw new Error(`label ${label}: unknown escape`);
          value += escaped;
        } else value += c;
      }
      if (labels.has(label)) throw new Error(`label ${label} appears twice`);
      labels.set(label, value);
      while (rest[i] === ' ') i++;
      if (rest[i] === ',') i++;
      else if (rest[i] !== '}') throw new Error(`expected , or } after label ${label}`);
    }
    i++;
  }
  if (rest[i] !== ' ' && rest[i] !== '\t') throw new Error('expected a space before the value');
  const fields = rest.slice(i).trim().split(/\s+/);
  if (fields.length > 2 || (fields[1] !== undefined && !/^-?\d+$/.test(fields[1]))) throw new Error('expected a value and an optional integer timestamp');
  return { name, labels: Object.fromEntries(labels), value: parseValue(fields[0]) };
}

function parseValue(text: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!FLOAT.test(text)) throw new Error(`expected a number, got ${JSON.stringify(text)}`);
  return Number(text);
}
