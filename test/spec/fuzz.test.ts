/**
 * Bad input, fuzzed (fast-check): whatever the text or value, the spec parser returns either a
 * valid spec or issues that each name a field path and what was expected — it never throws,
 * never hangs and never takes unbounded memory. Counts tried are printed.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { parseSpec, validateSpec } from '../../src/spec/load';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1500);

function expectWellFormed(result: ReturnType<typeof parseSpec>): void {
  if (result.ok) return;
  expect(result.issues.length).toBeGreaterThan(0);
  for (const issue of result.issues) {
    expect(typeof issue.path).toBe('string');
    expect(issue.path.length).toBeGreaterThan(0);
    expect(typeof issue.message).toBe('string');
    expect(issue.message.length).toBeGreaterThan(0);
    expect(issue.message.length).toBeLessThan(2000); // never echoes a huge input back
  }
}

/** Values a user could write in YAML: deep, unicode, huge, extreme numbers. */
const wild = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ unit: 'grapheme', maxLength: 40 }),
    fc.string({ minLength: 1000, maxLength: 70_000 }).map((s) => s.slice(0, 70_000)),
    fc.double(),
    fc.integer(),
    fc.constantFrom(0, -1, 1e308, -1e308, Number.MAX_SAFE_INTEGER, 2 ** 53 + 1, 1e-9, 100000000000),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

const fieldNames = fc.constantFrom('name', 'replicas', 'run', 'env', 'resources', 'readiness_probe', 'rollout', 'steps', 'analysis', 'max_surge', 'accelerators', 'timeout');

/** Specs that are almost right: real field names, wild values, at any depth. */
const almostSpec = fc.record({
  name: fc.oneof(fc.constant('llm'), wild),
  run: fc.oneof(fc.constant('serve'), wild),
  replicas: fc.oneof(fc.integer({ min: -5, max: 2000 }), wild),
  env: fc.oneof(fc.dictionary(fc.string({ maxLength: 20 }), wild, { maxKeys: 5 }), wild),
  resources: fc.oneof(fc.record({ provider: fc.oneof(fc.constantFrom('local', 'aws'), wild), accelerators: fc.oneof(fc.constantFrom('A100:1', 'L4', 'H100:99999999999999999999'), wild) }, { requiredKeys: [] }), wild),
  rollout: fc.oneof(
    fc.record(
      {
        strategy: fc.oneof(fc.constantFrom('rolling', 'blue_green', 'canary'), wild),
        max_surge: fc.oneof(fc.integer({ min: -2, max: 2000 }), fc.constantFrom('25%', '500%', '1e3%'), wild),
        steps: fc.oneof(fc.array(fc.oneof(fc.record({ weight: fc.oneof(fc.integer({ min: -10, max: 200 }), wild) }), fc.record({ pause: wild })), { maxLength: 8 }), wild),
        timeout: fc.oneof(fc.constantFrom('10m', '99999999d', '1h30m', ''), wild),
      },
      { requiredKeys: [] },
    ),
    wild,
  ),
  extra: fc.dictionary(fieldNames, wild, { maxKeys: 2 }),
}, { requiredKeys: [] });

let tried = 0;
afterAll(() => {
  console.log(`[fuzz] spec inputs tried: ${tried}`);
  // With RELIABILITY_REPORT=1 (npm run chaos) the count goes to the reliability figures; never otherwise (a clean clone stays clean).
  if (process.env.RELIABILITY_REPORT === '1') {
    const dir = path.join(__dirname, '..', '..', 'bench', 'results');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'spec-fuzz.json'), JSON.stringify({ specInputs: tried, runsPerProperty: RUNS }, null, 2) + '\n');
  }
});

test('random text never crashes the parser', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (text) => {
      tried += 1;
      expectWellFormed(parseSpec(text));
    }),
    { numRuns: RUNS },
  );
});

test('wild values in the right places: a valid spec or issues with paths, never a throw', () => {
  fc.assert(
    fc.property(almostSpec, (spec) => {
      tried += 1;
      const { extra, ...fields } = spec as Record<string, unknown> & { extra?: Record<string, unknown> };
      const value = { ...fields, ...(extra ?? {}) };
      expectWellFormed(validateSpec(value));
      expectWellFormed(parseSpec(YAML.stringify(value, { aliasDuplicateObjects: false })));
    }),
    { numRuns: RUNS },
  );
});

test('alias-heavy and deeply nested YAML is refused quickly, not expanded', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 200 }), (width, depth, nesting) => {
      tried += 1;
      const lines = [`a0: &a0 [${Array(width).fill('"x"').join(',')}]`];
      for (let d = 1; d < depth; d++) lines.push(`a${d}: &a${d} [${Array(width).fill(`*a${d - 1}`).join(',')}]`);
      lines.push(`deep: ${'['.repeat(nesting)}1${']'.repeat(nesting)}`, 'name: x', 'run: y');
      const started = Date.now();
      expectWellFormed(parseSpec(lines.join('\n')));
      expect(Date.now() - started).toBeLessThan(5000);
    }),
    { numRuns: 200 },
  );
});
