/**
 * Bad input on the command line, through the real CLI: exit 2 and one line saying which argument,
 * flag or setting is wrong and what was expected — no stack trace, no hang, nothing contacted.
 * Temporal is "unreachable" (a closed port) throughout, so an argument checked too late would
 * show as exit 3 instead of 2.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { reasonOption, ROLLBACK_REASON_MAX } from '../../src/cli/commands/control';
import { CliError, ExitCode } from '../../src/cli/errors';
import { serviceArgument } from '../../src/cli/service-name';
import { ROUTER_TOKEN_FILE_MAX_BYTES, workerConfigFromEnv, WorkerStartError } from '../../src/worker';

const root = path.resolve(__dirname, '../..');
const CLOSED = '127.0.0.1:1';

/** The environment without any setting of ours, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(TEMPORAL_|ROUTER_|ROLLOUT_)/.test(k)) env[k] = v;
  return { ...env, TEMPORAL_ADDRESS: CLOSED, ...extra };
}

/** Runs the CLI to its end; the timeout only turns a hang into a failure. */
function rollout(args: string[], env: NodeJS.ProcessEnv = cleanEnv()) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/rollout.js'), ...args], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
  expect(r.signal).toBeNull(); // not killed by the timeout: it did not hang
  return r;
}

/** Exit 2, nothing on stdout, exactly one line on stderr matching `message`. */
function expectRefused(r: ReturnType<typeof rollout>, message: RegExp): void {
  expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 2, stdout: '' });
  expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(message)]);
}

let dir: string;

beforeAll(() => {
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-bad-input-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('a service name on the command line: the spec\'s rule, exit 2, before Temporal is contacted', () => {
  const rule = /^error: <service>: expected lowercase letters, digits and "-", starting with a letter, at most 40 characters, got /;

  test.each([
    ['status', 'Bad Name!'],
    ['pause', '../x'],
    ['resume', 'UPPER'],
    ['advance', ''],
    ['promote', 'a'.repeat(41)],
    ['rollback', 'snake_case'],
    ['gc', 'Bad Name!'],
  ])('rollout %s %j', (command, name) => {
    expectRefused(rollout([command, name]), rule);
  });

  test('set-canary: the name is checked before the percent', () => {
    expectRefused(rollout(['set-canary', 'Bad Name!', '30']), rule);
  });

  test('gc --dry-run: the name is checked first; a good one with Temporal not answering is exit 3 (in JSON too)', () => {
    expectRefused(rollout(['gc', 'X', '--dry-run']), rule);
    const r = rollout(['gc', 'llm', '--dry-run', '-o', 'json']);
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout)).toMatchObject({ error: { exitCode: 3, message: expect.stringMatching(/cannot reach Temporal at 127\.0\.0\.1:1/) } });
    expect(rollout(['gc']).status).toBe(2); // no service: a usage error
  });

  test('serviceArgument accepts what the spec accepts', () => {
    expect(serviceArgument('llm-2')).toBe('llm-2');
    expect(() => serviceArgument('2llm')).toThrow(CliError);
  });
});

describe('rollback --reason is bounded', () => {
  test(`over ${ROLLBACK_REASON_MAX} characters: exit 2, nothing sent`, () => {
    expectRefused(rollout(['rollback', 'llm', '--reason', 'x'.repeat(100_000)]), /^error: --reason: expected at most 500 characters, got 100000$/);
  });

  test('the limit counts characters, not bytes, and is inclusive', () => {
    expect(reasonOption('é'.repeat(ROLLBACK_REASON_MAX))).toHaveLength(ROLLBACK_REASON_MAX);
    expect(reasonOption('🙂'.repeat(ROLLBACK_REASON_MAX))).toBe('🙂'.repeat(ROLLBACK_REASON_MAX));
    let err: unknown;
    try {
      reasonOption('x'.repeat(ROLLBACK_REASON_MAX + 1));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(ExitCode.invalidInput);
  });
});

describe('a spec that is not a regular file, or too large: exit 2, read boundedly', () => {
  let fifo: string;
  beforeAll(() => {
    fifo = path.join(dir, 'spec.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
  });

  test.each(['validate', 'plan', 'deploy'])('rollout %s /dev/urandom, a FIFO, a directory', (command) => {
    for (const [file, kind] of [['/dev/urandom', 'a character device'], [fifo, 'a named pipe \\(FIFO\\)'], [dir, 'a directory']]) {
      const r = rollout([command, file]);
      expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 2, stdout: '' });
      expect(r.stderr).toMatch(new RegExp(`^error: invalid spec .*:\n {2}\\(file\\): expected a regular file, .* is ${kind}\n$`));
    }
  });

  test('rollout validate on a 2 MiB file: refused by its size', () => {
    const big = path.join(dir, 'big.yaml');
    fs.writeFileSync(big, `name: a\nrun: x\n# ${'x'.repeat(2 * 1024 * 1024)}\n`);
    const r = rollout(['validate', big]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/\(file\): expected a spec of at most 1024 KiB, .*big\.yaml has 2049 KiB/);
  });

  test('a regular spec still validates', () => {
    const r = rollout(['validate', 'examples/llm-service.yaml']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/valid \(service llm/);
  });
});

test('a malformed TEMPORAL_ADDRESS is invalid input (exit 2), not "unreachable" (exit 3)', () => {
  expectRefused(rollout(['status', 'llm'], cleanEnv({ TEMPORAL_ADDRESS: 'not an address' })), /^error: TEMPORAL_ADDRESS: expected host:port .*got "not an address"$/);
});

test('rollout dev takes no connection flag (it runs its own Temporal): exit 2, before or after the command', () => {
  const refused = /^error: --(profile|address): rollout dev runs its own Temporal \(see --temporal-port\); the connection flags are for the commands that connect to one$/;
  expectRefused(rollout(['--profile', 'cloud', 'dev']), refused);
  expectRefused(rollout(['dev', '--address', '127.0.0.1:7233']), refused);
});

test('rollout dev --db-filename: only with --persist, a file in a directory that exists (exit 2, before anything starts)', () => {
  const state = path.join(dir, 'dev-state');
  expectRefused(rollout(['dev', '--state-dir', state, '--db-filename', path.join(dir, 'x.db')]), /^error: --db-filename: only with --persist \(without it Temporal keeps its state in memory\)$/);
  expectRefused(rollout(['dev', '--persist', '--state-dir', state, '--db-filename', '/no-such-dir/x.db']), /^error: --db-filename \/no-such-dir\/x\.db: the directory \/no-such-dir does not exist$/);
  expectRefused(rollout(['dev', '--persist', '--state-dir', state, '--db-filename', dir]), /^error: --db-filename .*: expected a file \(a SQLite database\), it is not a regular file$/);
  expect(fs.existsSync(path.join(state, 'persist.json'))).toBe(false);
});

describe('rollout worker: bad configuration is one line and exit 2; Temporal not answering is exit 3', () => {
  const router = { ROUTER_ADMIN_URL: 'http://127.0.0.1:1', ROUTER_PUBLIC_URL: 'http://127.0.0.1:2', ROUTER_TOKEN: 'x' };
  const stateDir = () => path.join(dir, 'worker-state');

  test.each([
    [{ ROUTER_ADMIN_URL: '' }, /^error: ROUTER_ADMIN_URL is not set$/],
    [{ ROUTER_ADMIN_URL: 'nope' }, /^error: ROUTER_ADMIN_URL: expected an http:\/\/ or https:\/\/ URL, got "nope"$/],
    [{ ROUTER_PUBLIC_URL: 'ftp://x' }, /^error: ROUTER_PUBLIC_URL: expected an http:\/\/ or https:\/\/ URL, got "ftp:\/\/x"$/],
    [{ ROUTER_TOKEN: '', ROUTER_TOKEN_FILE: '/nonexistent/token' }, /^error: ROUTER_TOKEN_FILE \/nonexistent\/token: cannot read it \(ENOENT\)$/],
    [{ ROUTER_TOKEN: '', ROUTER_TOKEN_FILE: '/dev/urandom' }, /^error: ROUTER_TOKEN_FILE \/dev\/urandom: expected a regular file holding the router's admin token, it is a character device$/],
    [{ ROUTER_TOKEN: '' }, /^error: ROUTER_TOKEN_FILE \(or ROUTER_TOKEN\) is not set$/],
    [{ TEMPORAL_ADDRESS: 'not an address' }, /^error: TEMPORAL_ADDRESS: expected host:port with a port from 1 to 65535 \(e\.g\. localhost:7233\), got "not an address"$/],
    [{ TEMPORAL_ADDRESS: 'localhost:99999' }, /^error: TEMPORAL_ADDRESS: expected host:port/],
    [{ ROLLOUT_GPUS: 'lots' }, /^error: ROLLOUT_GPUS: expected a whole number of GPUs \(0, 1, 2…\), got "lots"$/],
    [{ ROLLOUT_REPLICA_USER: 'no-such-user-here' }, /^error: ROLLOUT_REPLICA_USER: no user "no-such-user-here" in \/etc\/passwd/],
    [{ ROLLOUT_STATE_DIR: '/proc/self' }, /^error: ROLLOUT_STATE_DIR \/proc\/self: cannot create files in it/],
  ])('%j', (settings, message) => {
    expectRefused(rollout(['worker'], cleanEnv({ ROLLOUT_STATE_DIR: stateDir(), ...router, ...settings })), message);
  });

  test('an empty token file, one too large', () => {
    const empty = path.join(dir, 'empty.token');
    const large = path.join(dir, 'large.token');
    fs.writeFileSync(empty, '\n');
    fs.writeFileSync(large, 'x'.repeat(ROUTER_TOKEN_FILE_MAX_BYTES + 1));
    const config = (file: string) => () => workerConfigFromEnv({ ...router, ROUTER_TOKEN: '', ROUTER_TOKEN_FILE: file, ROLLOUT_STATE_DIR: stateDir() });
    expect(config(empty)).toThrow(new WorkerStartError(`ROUTER_TOKEN_FILE ${empty}: the file is empty`, 'config'));
    expect(config(large)).toThrow(`ROUTER_TOKEN_FILE ${large}: expected a file of at most 4096 bytes holding the router's admin token`);
  });

  test('a good configuration parses', () => {
    const token = path.join(dir, 'good.token');
    fs.writeFileSync(token, 'secret\n');
    expect(workerConfigFromEnv({ ...router, ROUTER_TOKEN: '', ROUTER_TOKEN_FILE: token, ROLLOUT_STATE_DIR: stateDir(), ROLLOUT_GPUS: '2', ROLLOUT_REPLICA_USER: 'worker' })).toMatchObject({
      temporalAddress: 'localhost:7233',
      namespace: 'default',
      gpus: 2,
      routerToken: 'secret',
      stateDir: stateDir(),
    });
  });

  test('Temporal not answering: exit 3, one line saying where it looked', () => {
    const r = rollout(['worker'], cleanEnv({ ROLLOUT_STATE_DIR: stateDir(), ...router }));
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 3, stdout: '' });
    expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^error: cannot reach Temporal at 127\.0\.0\.1:1 \(ECONNREFUSED\); start it \(`rollout dev`\) or set TEMPORAL_ADDRESS \(or --address, or a --profile\)$/)]);
  });
});

describe('a usage error (unknown option, bad choice, missing argument): one line, exit 2', () => {
  test.each([
    [['list', '--bogus'], /^error: unknown option '--bogus'$/],
    [['history', 'llm', '-o', 'yaml'], /^error: option '-o, --output <format>' argument 'yaml' is invalid\. Allowed choices are text, json\.$/],
    [['deploy'], /^error: missing required argument 'spec'$/],
    [['status', 'llm', '--wacth'], /^error: unknown option '--wacth' \(did you mean --watch\?\)$/],
    [['depoly', 'x.yaml'], /^error: unknown command 'depoly' \(did you mean deploy\?\)$/],
  ])('rollout %j', (args, message) => {
    expectRefused(rollout(args), message);
  });
});

describe('rollout router: a ROUTER_TOKEN_FILE that cannot give a token is one line, exit 2, nothing started', () => {
  test.each([
    ['/nonexistent/token', /^error: ROUTER_TOKEN_FILE \/nonexistent\/token: cannot read it \(ENOENT\)$/],
    ['/tmp', /^error: ROUTER_TOKEN_FILE \/tmp: expected a regular file holding the router's admin token, it is a directory$/],
  ])('%s', (file, message) => {
    expectRefused(rollout(['router'], cleanEnv({ ROUTER_TOKEN_FILE: file, ROUTER_TRAFFIC_PORT: '0', ROUTER_ADMIN_PORT: '0' })), message);
  });

  test('an empty file', () => {
    const file = path.join(dir, 'empty-router-token');
    fs.writeFileSync(file, '\n');
    expectRefused(rollout(['router'], cleanEnv({ ROUTER_TOKEN_FILE: file, ROUTER_TRAFFIC_PORT: '0', ROUTER_ADMIN_PORT: '0' })), /^error: ROUTER_TOKEN_FILE .*: the file is empty$/);
  });
});
