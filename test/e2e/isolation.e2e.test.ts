/**
 * What a replica gets and what it can reach, on the real stack: secret references resolved on
 * the worker reach the replica and nowhere else (not in any workflow history, log file, route
 * table or CLI output); the replica's environment is its spec's plus a minimal base, nothing of
 * the worker's; run as root, the stack runs replicas as `nobody`, who cannot read the worker's
 * environment or the router token file; the worker's own environment never held the token.
 */
import { Connection, WorkflowClient } from '@temporalio/client';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rolloutCli, ROOT, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';

const SECRET_FROM_ENV = `s3cr3t-env-${process.pid}-${Date.now()}`;
const SECRET_FROM_FILE = `s3cr3t-file-${process.pid}-${Date.now()}`;
const asRoot = process.getuid?.() === 0;

let stack: RunningStack;
let dir: string;
const outputs: string[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-isolation-'));
  stack = await startStack([], { env: { E2E_MODEL_TOKEN: SECRET_FROM_ENV } });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function cli(args: string[]) {
  const r = await rolloutCli(stack, args);
  outputs.push(r.stdout, r.stderr);
  return r;
}

/** Every string in a history, payload bytes decoded as UTF-8 (where JSON payloads hold their text). */
function textOf(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (Array.isArray(value)) return value.map(textOf).join('\n');
  if (value && typeof value === 'object') return Object.values(value).map(textOf).join('\n');
  return String(value ?? '');
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the fixture's JSON
async function viaRouter(p: string): Promise<any> {
  const res = await fetch(`${stack.routerUrl}/iso${p}`);
  expect(res.status).toBe(200);
  return res.json();
}

test('a secret reference reaches the replica, and only the replica', async () => {
  const keyFile = path.join(dir, 'key');
  fs.writeFileSync(keyFile, `${SECRET_FROM_FILE}\n`, { mode: 0o600 });
  const spec = writeSpec(
    dir,
    'iso.yaml',
    [
      'name: iso',
      'replicas: 1',
      `run: ${JSON.stringify(`${process.execPath} ${path.join(ROOT, 'test/providers/fixtures/replica-server.js')}`)}`,
      'env:',
      '  MODEL: plain',
      '  HF_TOKEN: {from_env: E2E_MODEL_TOKEN}',
      `  KEY: {from_file: ${keyFile}}`,
      'readiness_probe: {path: /health, period_seconds: 1, initial_delay_seconds: 60}',
      '',
    ].join('\n'),
  );
  const deployed = await cli(['deploy', spec, '--wait']);
  expect(deployed.code).toBe(0);
  expect(deployed.stderr).not.toMatch(/warning: env\./); // references, not literals: no warning
  expect((await cli(['status', 'iso', '-o', 'json'])).code).toBe(0);
  await cli(['status', 'iso']);
  await cli(['plan', spec, '-o', 'json']);

  // The replica has the values…
  const { env, uid } = await viaRouter('/env?all=1');
  expect(env).toMatchObject({ MODEL: 'plain', HF_TOKEN: SECRET_FROM_ENV, KEY: SECRET_FROM_FILE });
  // …and nothing of the worker's environment: only the base, its spec's and its identity.
  for (const name of ['TEMPORAL_ADDRESS', 'ROUTER_ADMIN_URL', 'ROUTER_TOKEN', 'ROUTER_TOKEN_FILE', 'ROUTER_PUBLIC_URL', 'ROLLOUT_STATE_DIR', 'E2E_MODEL_TOKEN', 'ROLLOUT_EXIT_WITH_STDIN']) {
    expect(env).not.toHaveProperty(name);
  }
  const allowed = new Set(['PATH', 'HOME', 'LANG', 'LC_ALL', 'LC_CTYPE', 'LC_MESSAGES', 'TZ', 'TMPDIR', 'MODEL', 'HF_TOKEN', 'KEY', 'PORT', 'REPLICA_ID', 'SERVICE_NAME', 'SERVICE_VERSION', 'CUDA_VISIBLE_DEVICES']);
  // sh and node add a few of their own (PWD, SHLVL, _).
  expect(Object.keys(env).filter((k) => !allowed.has(k) && !['PWD', 'SHLVL', '_', 'OLDPWD'].includes(k))).toEqual([]);
  if (asRoot) expect(uid).toBe(65534); // run as root, the stack runs replicas as nobody

  // Nowhere else: every workflow history of the service, every log and state file, every CLI output.
  const connection = await Connection.connect({ address: stack.temporalAddress });
  try {
    const client = new WorkflowClient({ connection });
    const texts: string[] = [...outputs];
    for await (const wf of client.list()) {
      const history = await client.getHandle(wf.workflowId, wf.runId).fetchHistory();
      texts.push(textOf(history));
      texts.push(JSON.stringify(wf.searchAttributes ?? {}), JSON.stringify(wf.memo ?? {}));
    }
    // Regular files only: the state dir also holds the router's handover socket.
    const files = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(d, e.name)) : e.isFile() ? [path.join(d, e.name)] : []));
    for (const file of files(stack.stateDir)) texts.push(fs.readFileSync(file, 'utf8'));
    texts.push(stack.output());
    const encodings = (s: string) => [s, Buffer.from(s).toString('base64')];
    const hits = texts.filter((t) => [...encodings(SECRET_FROM_ENV), ...encodings(SECRET_FROM_FILE)].some((secret) => t.includes(secret)));
    expect(texts.length).toBeGreaterThan(10);
    // The scan does read the payloads: the references themselves are there (the spec travels with them)…
    expect(texts.some((t) => t.includes('E2E_MODEL_TOKEN') && t.includes('from_file'))).toBe(true);
    // …and the values nowhere.
    expect(hits).toEqual([]);
  } finally {
    await connection.close();
  }
}, 180_000);

(asRoot ? test : test.skip)('run as nobody, a replica cannot read the worker\'s environment or the router token; the worker never held the token', async () => {
  const workerPid = stack.workerPid();
  const token = fs.readFileSync(path.join(stack.stateDir, 'router.token'), 'utf8').trim();
  expect(token.length).toBeGreaterThan(20);
  expect(await viaRouter(`/read?path=${encodeURIComponent(`/proc/${workerPid}/environ`)}`)).toEqual({ ok: false, code: 'EACCES' });
  expect(await viaRouter(`/read?path=${encodeURIComponent(path.join(stack.stateDir, 'router.token'))}`)).toEqual({ ok: false, code: 'EACCES' });
  // Even a process of the worker's own user finds no token in its initial environment.
  expect(fs.readFileSync(`/proc/${workerPid}/environ`, 'utf8')).not.toContain(token);
});

test("a from_file secret naming the router token (in the worker's state dir, directly or through a link) fails the launch; the service keeps serving", async () => {
  const link = path.join(dir, 'innocent-looking');
  fs.symlinkSync(path.join(stack.stateDir, 'router.token'), link);
  const spec = writeSpec(
    dir,
    'iso-steal.yaml',
    [
      'name: iso',
      'replicas: 1',
      `run: ${JSON.stringify(`${process.execPath} ${path.join(ROOT, 'test/providers/fixtures/replica-server.js')}`)}`,
      'env:',
      '  MODEL: stolen',
      `  ADMIN: {from_file: ${link}}`,
      'readiness_probe: {path: /health, period_seconds: 1, initial_delay_seconds: 60}',
      '',
    ].join('\n'),
  );
  const deployed = await cli(['deploy', spec, '--wait']);
  expect(deployed.code).toBe(1);
  expect(deployed.stdout + deployed.stderr).toContain("it is the worker's router token file");
  // The first version still serves, and it never saw the token.
  const { env } = await viaRouter('/env?all=1');
  expect(env.MODEL).toBe('plain');
  const token = fs.readFileSync(path.join(stack.stateDir, 'router.token'), 'utf8').trim();
  expect(JSON.stringify(env)).not.toContain(token);
}, 180_000);
