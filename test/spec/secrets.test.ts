/** Secret references in env: parsed, shown redacted, resolved only by resolveEnv (on the worker). */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

test('a secret holding a NUL byte fails with a message that does not quote it', () => {
  const value = 'TOP-SECRET-VALUE\0tail';
  let message = '';
  try {
    resolveEnv({ A: { from_file: '/x/secret' } }, { env: {}, readFile: () => value });
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message).toMatch(/the secret in \/x\/secret holds a NUL byte/);
  expect(message).not.toContain('TOP-SECRET');
  expect(() => resolveEnv({ B: { from_env: 'S' } }, { env: { S: value }, readFile: () => '' })).toThrow(/the secret in S holds a NUL byte/);
});

describe('from_file on the worker (readSecretFile)', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded here only: the activities pull in the worker's dependencies
  const { readSecretFile } = require('../../src/activities') as typeof import('../../src/activities');
  test('a FIFO, /dev/urandom and a directory are refused at once, not read (a FIFO would block the worker)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'secret-file-'));
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => readSecretFile(fifo)).toThrow(/a named pipe \(FIFO\), not a regular file/);
    expect(() => readSecretFile('/dev/urandom')).toThrow(/a character device, not a regular file/);
    expect(() => readSecretFile(dir)).toThrow(/a directory, not a regular file/);
    const big = path.join(dir, 'big');
    fs.writeFileSync(big, Buffer.alloc(65 * 1024, 97));
    expect(() => readSecretFile(big)).toThrow(/larger than 64 KiB/);
    fs.writeFileSync(path.join(dir, 'token'), 'hf_abc\n');
    expect(readSecretFile(path.join(dir, 'token'))).toBe('hf_abc\n');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("never the worker's state dir or its router token file; only ROLLOUT_SECRET_DIRS when set, links resolved first", () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
    const { secretDirsFrom } = require('../../src/activities/secret-files') as typeof import('../../src/activities/secret-files');
    const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'secret-policy-')));
    try {
      const [state, secrets, elsewhere] = ['state', 'secrets', 'elsewhere'].map((d) => path.join(root, d));
      for (const d of [state, secrets, elsewhere]) fs.mkdirSync(d);
      fs.writeFileSync(path.join(state, 'router.token'), 'admin-token');
      fs.writeFileSync(path.join(secrets, 'hf'), 'hf_ok');
      fs.writeFileSync(path.join(elsewhere, 'key'), 'private');
      fs.writeFileSync(path.join(elsewhere, 'router.token'), 'admin-token-2');
      // A link inside the allowed dir that points out of it.
      fs.symlinkSync(path.join(elsewhere, 'key'), path.join(secrets, 'escape'));
      fs.symlinkSync(path.join(state, 'router.token'), path.join(elsewhere, 'to-token'));

      const open = { deniedDirs: [state], deniedFiles: [path.join(elsewhere, 'router.token')] };
      expect(() => readSecretFile(path.join(state, 'router.token'), open)).toThrow("it is in the worker's own state dir");
      expect(() => readSecretFile(path.join(elsewhere, 'to-token'), open)).toThrow("it is in the worker's own state dir");
      expect(() => readSecretFile(path.join(elsewhere, 'router.token'), open)).toThrow("it is the worker's router token file");
      expect(readSecretFile(path.join(elsewhere, 'key'), open)).toBe('private');

      const allowed = secretDirsFrom(`${secrets}:`);
      expect(allowed).toEqual([secrets]);
      const closed = { ...open, allowedDirs: allowed };
      expect(readSecretFile(path.join(secrets, 'hf'), closed)).toBe('hf_ok');
      expect(() => readSecretFile(path.join(elsewhere, 'key'), closed)).toThrow(`it is not a readable file inside ROLLOUT_SECRET_DIRS (${secrets})`);
      expect(() => readSecretFile(path.join(secrets, 'escape'), closed)).toThrow(/not a readable file inside ROLLOUT_SECRET_DIRS/);
      // A sibling whose name starts like the allowed dir is not inside it.
      fs.mkdirSync(`${secrets}-not`);
      fs.writeFileSync(`${secrets}-not/x`, 'x');
      expect(() => readSecretFile(`${secrets}-not/x`, closed)).toThrow(/not a readable file inside ROLLOUT_SECRET_DIRS/);
      expect(() => readSecretFile('relative/path', closed)).toThrow('expected an absolute path');
      // Missing inside, missing or present outside, through a link or not: one answer (no probing).
      const uniform = `it is not a readable file inside ROLLOUT_SECRET_DIRS (${secrets})`;
      fs.symlinkSync('/etc/passwd', path.join(secrets, 'l-exist'));
      fs.symlinkSync('/etc/no-such-file', path.join(secrets, 'l-missing'));
      for (const probe of ['missing', 'l-exist', 'l-missing']) expect(() => readSecretFile(path.join(secrets, probe), closed)).toThrow(uniform);
      expect(() => readSecretFile(path.join(secrets, 'missing'), open)).toThrow('ENOENT'); // unrestricted: errno as it is
      // Any file of the state dir by inode, not only the token: a hard link to one elsewhere is refused.
      fs.writeFileSync(path.join(state, 'stack.json'), '{}');
      fs.linkSync(path.join(state, 'stack.json'), path.join(elsewhere, 'stack-hard'));
      expect(() => readSecretFile(path.join(elsewhere, 'stack-hard'), open)).toThrow("it is in the worker's own state dir");
      // Bytes that are not UTF-8 would reach the replica changed: refused.
      fs.writeFileSync(path.join(elsewhere, 'binary'), Buffer.from([0x41, 0xff, 0xfe, 0x42]));
      expect(() => readSecretFile(path.join(elsewhere, 'binary'), open)).toThrow('it is not UTF-8 text');
      // Outside the allowed dirs, a missing file says the same as an existing one: no probing.
      expect(() => readSecretFile(path.join(elsewhere, 'no-such-file'), closed)).toThrow(/not a readable file inside ROLLOUT_SECRET_DIRS/);
      // A hard link to the token file is the token file.
      fs.linkSync(path.join(elsewhere, 'router.token'), path.join(secrets, 'hard'));
      expect(() => readSecretFile(path.join(secrets, 'hard'), closed)).toThrow("it is the worker's router token file");

      expect(secretDirsFrom(undefined)).toBeUndefined();
      expect(secretDirsFrom('')).toBeUndefined();
      expect(() => secretDirsFrom('relative')).toThrow('ROLLOUT_SECRET_DIRS: expected absolute directory paths separated by ":", got "relative"');
      expect(() => secretDirsFrom(path.join(secrets, 'hf'))).toThrow(/is not a directory/);
      expect(() => secretDirsFrom(path.join(root, 'nope'))).toThrow(/ENOENT/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
