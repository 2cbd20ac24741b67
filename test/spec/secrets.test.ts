/** Secret references in env: parsed, shown redacted, resolved only by resolveEnv (on the worker). */
import { parseSpec } from '../../src/spec/load';
import { describeEnvValue, literalSecretsIn, resolveEnv, SecretUnavailableError } from '../../src/spec/secrets';

const base = 'name: llm\nrun: serve\n';

test('a spec takes {from_env} and {from_file} references beside literal values', () => {
  const r = parseSpec(`${base}env: {MODEL: tiny, HF_TOKEN: {from_env: HF_TOKEN}, KEY: {from_file: /run/secrets/key}}\n`);
  expect(r.ok && r.spec.env).toEqual({ MODEL: 'tiny', HF_TOKEN: { from_env: 'HF_TOKEN' }, KEY: { from_file: '/run/secrets/key' } });
});

test.each([
  ['env: {T: {from_env: "1bad"}}', /^env\.T\.from_env: expected an environment variable name of the worker, got "1bad"$/],
  ['env: {T: {from_file: relative/path}}', /^env\.T\.from_file: expected an absolute path of a file on the worker/],
  ['env: {T: {from_env: A, from_file: /b}}', /secret reference/],
  ['env: {T: {from_vault: x}}', /^env\.T: .*secret reference \{from_env: NAME\} or \{from_file: \/path\}/],
])('%s is refused', (yaml, message) => {
  const r = parseSpec(`${base}${yaml}\n`);
  expect(r.ok).toBe(false);
  if (!r.ok) expect(r.issues.map((i) => `${i.path}: ${i.message}`).find((line) => line.startsWith('env.T'))).toMatch(message);
});

test('describeEnvValue shows the reference, never a value', () => {
  expect(describeEnvValue('tiny')).toBe('tiny');
  expect(describeEnvValue({ from_env: 'HF_TOKEN' })).toBe('<secret from env HF_TOKEN>');
  expect(describeEnvValue({ from_file: '/run/key' })).toBe('<secret from file /run/key>');
});

describe('resolveEnv', () => {
  const readers = { env: { HF_TOKEN: 'hf_secret' }, readFile: (p: string) => (p === '/run/key' ? 'k3y\n' : fail(p)) };
  function fail(p: string): never {
    throw Object.assign(new Error(`ENOENT ${p}`), { code: 'ENOENT' });
  }

  test('literals pass, references resolve (one trailing newline of a file dropped)', () => {
    expect(resolveEnv({ A: 'x', T: { from_env: 'HF_TOKEN' }, K: { from_file: '/run/key' } }, readers)).toEqual({ A: 'x', T: 'hf_secret', K: 'k3y' });
  });

  test.each([
    [{ T: { from_env: 'MISSING' } }, 'env.T: the worker has no environment variable MISSING'],
    [{ K: { from_file: '/nope' } }, 'env.K: cannot read /nope on the worker (ENOENT)'],
  ])('%j → a SecretUnavailableError naming the variable, not a value', (env, message) => {
    expect(() => resolveEnv(env, readers)).toThrow(SecretUnavailableError);
    expect(() => resolveEnv(env, readers)).toThrow(message);
  });
});

test('literalSecretsIn names literal values under credential-like names', () => {
  expect(literalSecretsIn({ HF_TOKEN: 'hf_x', API_KEY: 'k', MODEL: 'm', DB_PASSWORD: 'p', REF_TOKEN: { from_env: 'X' }, EMPTY_SECRET: '' })).toEqual(['API_KEY', 'DB_PASSWORD', 'HF_TOKEN']);
});
