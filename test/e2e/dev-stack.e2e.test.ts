/**
 * The embedded stack keeps itself whole: a second `rollout dev` on the same state dir refuses
 * and touches nothing, a port another program holds stops the start before anything is
 * cleaned up, and a stack killed with SIGKILL takes its Temporal, router and worker with it
 * (the next start cleans up its replicas). SIGUSR2 to the stack hands its router over to a new
 * process with no request dropped; a router SIGKILLed is restarted with its split.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { devArgs, killProcess, modelServerSpec, replicaProcesses, rolloutCli, ROOT, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';
import { startLoad } from '../helpers/load';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';

let specDir: string;
const stacks: RunningStack[] = [];

beforeAll(() => {
  specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-devstack-'));
});

afterAll(async () => {
  for (const s of stacks) await s.stop();
}, 120_000);

/** Runs `rollout dev` (or another command) to its exit (it is expected to refuse), with its output. */
function devUntilExit(args: string[], opts: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rollout dev did not exit:\n${output}`));
    }, 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const alive = (pid: number): boolean => {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

async function serve(stack: RunningStack, name: string): Promise<void> {
  const spec = writeSpec(specDir, `${name}.yaml`, modelServerSpec({ name, version: 'v1', replicas: 1 }));
  const deployed = await rolloutCli(stack, ['deploy', spec, '--wait']);
  expect(deployed.code).toBe(0);
  // The stacks here are headless: no UI runs, so no link to one is printed.
  expect(deployed.stderr).toMatch(/^deploying .*: workflow rollout-/m);
  expect(deployed.stderr).not.toMatch(/history:|http:\/\/127\.0\.0\.1:\d+\/namespaces\//);
}

async function answers(stack: RunningStack, name: string): Promise<number> {
  const res = await fetch(`${stack.routerUrl}/${name}/v1/models`);
  await res.arrayBuffer();
  return res.status;
}

test('a second rollout dev on the same state dir refuses (exit 2) and the running stack keeps serving', async () => {
  const first = await startStack();
  stacks.push(first);
  await serve(first, 'keep');
  const replicasBefore = replicaProcesses('keep');
  const routesBefore = fs.readFileSync(path.join(first.stateDir, 'routes.json'), 'utf8');
  const stackFileBefore = fs.readFileSync(path.join(first.stateDir, 'stack.json'), 'utf8');

  const { args } = await devArgs([], first.stateDir);
  const second = await devUntilExit(args);
  expect(second.code).toBe(2);
  expect(second.output).toMatch(new RegExp(`another rollout dev \\(pid ${first.dev.pid}\\) runs on ${first.stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  expect(second.output).not.toMatch(/^ready:/m);
  expect(second.output).not.toMatch(/terminated \d+ replica/);

  expect(replicaProcesses('keep')).toEqual(replicasBefore);
  expect(fs.readFileSync(path.join(first.stateDir, 'routes.json'), 'utf8')).toBe(routesBefore);
  expect(fs.readFileSync(path.join(first.stateDir, 'stack.json'), 'utf8')).toBe(stackFileBefore);
  expect(await answers(first, 'keep')).toBe(200);
}, 300_000);

test('SIGUSR2 to rollout dev hands the router over under load (0 failed, stack.json names the new pid); a SIGKILLed router comes back with its split', async () => {
  const stack = stacks[0] ?? (await startStack());
  if (!stacks.includes(stack)) stacks.push(stack);
  const name = 'handover';
  await serve(stack, name);
  const routerPid = (): number => (JSON.parse(fs.readFileSync(path.join(stack.stateDir, 'stack.json'), 'utf8')) as { children: { name: string; pid: number }[] }).children.find((c) => c.name === 'router')!.pid;
  const before = routerPid();
  const routesBefore = JSON.parse(fs.readFileSync(path.join(stack.stateDir, 'routes.json'), 'utf8')).services[name];
  const load = startLoad(`${stack.routerUrl}/${name}`, { clients: 3 });
  await load.until((r) => r.requests >= 50, 'load through the router');
  killProcess(stack.dev.pid!, 'SIGUSR2');
  await waitUntil(() => routerPid() !== before && alive(routerPid()), 'stack.json to name the new router', 60_000);
  await waitUntil(() => !alive(before), 'the old router to drain and exit', 60_000);
  const seen = load.snapshot().requests;
  await load.until((r) => r.requests >= seen + 50, 'load through the new router');
  const report = await load.stop();
  expect(report.failures).toEqual([]);
  expect(stack.output()).toMatch(/router handed over: pid \d+ \(0\.1\.0\) → pid \d+ \(0\.1\.0\)/);

  const handedTo = routerPid();
  killProcess(handedTo, 'SIGKILL');
  await waitUntil(() => routerPid() !== handedTo && alive(routerPid()), 'the router to be restarted', 60_000);
  await waitUntil(async () => (await answers(stack, name).catch(() => 0)) === 200, 'the restarted router to serve');
  expect(JSON.parse(fs.readFileSync(path.join(stack.stateDir, 'routes.json'), 'utf8')).services[name]).toEqual(routesBefore);
}, 300_000);

test('a port another program holds: exit 2 naming the flag, nothing started or cleaned up', async () => {
  const blocker = net.createServer();
  const taken = await freePort();
  await new Promise<void>((resolve) => blocker.listen(taken, '127.0.0.1', resolve));
  try {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-e2e-'));
    // A record of a replica from "an earlier run": a refused start must leave it alone.
    fs.mkdirSync(path.join(stateDir, 'local', 'replicas'), { recursive: true });
    fs.writeFileSync(path.join(stateDir, 'routes.json'), '{"services": {}}');
    const { args } = await devArgs(['--router-port', String(taken)], stateDir);
    const r = await devUntilExit(args);
    expect(r.code).toBe(2);
    expect(r.output).toMatch(new RegExp(`--router-port ${taken}: in use by another program`));
    expect(r.output).not.toMatch(/^ready:/m);
    expect(fs.existsSync(path.join(stateDir, 'routes.json'))).toBe(true);
    expect(fs.existsSync(path.join(stateDir, 'stack.json'))).toBe(false);
    expect(fs.existsSync(path.join(stateDir, 'stack.lock'))).toBe(false); // released
    // A state dir that did not exist is not left behind by a refused start.
    const fresh = path.join(stateDir, 'not-yet', 'state');
    const refused = await devUntilExit((await devArgs(['--router-port', String(taken)], fresh)).args);
    expect(refused.code).toBe(2);
    expect(fs.existsSync(path.join(stateDir, 'not-yet'))).toBe(false);
  } finally {
    blocker.close();
  }
}, 120_000);

test('kill -9 of rollout dev: Temporal, router and worker stop with it; the next start removes its replicas', async () => {
  const doomed = await startStack();
  await serve(doomed, 'orphan');
  const orphans = replicaProcesses('orphan');
  expect(orphans.length).toBeGreaterThan(0);
  const { children } = JSON.parse(fs.readFileSync(path.join(doomed.stateDir, 'stack.json'), 'utf8')) as { children: { name: string; pid: number }[] };
  expect(children.map((c) => c.name).sort()).toEqual(['router', 'temporal', 'worker']);

  killProcess(doomed.dev.pid!, 'SIGKILL');
  await waitUntil(() => children.every((c) => !alive(c.pid)), `${children.map((c) => `${c.name} ${c.pid}`).join(', ')} to stop after the stack died`, 60_000);

  // Replicas outlive a dead stack by design (they outlive a crashed worker too); the next
  // start on the same state dir takes over its lock and removes them.
  const next = await startStack([], { stateDir: doomed.stateDir });
  stacks.push(next);
  expect(next.output()).toMatch(/terminated \d+ replica\(s\) left by a previous run/);
  await waitUntil(() => orphans.every((p) => !alive(p.pid)), 'the old replicas to be gone', 30_000);
  await serve(next, 'orphan');
  expect(await answers(next, 'orphan')).toBe(200);
}, 300_000);

test('a --state-dir that is a file, under a file, in /proc or not writable: exit 2, one line naming --state-dir, nothing started', async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-statedir-'));
  fs.chmodSync(base, 0o755); // another user (below) may look inside
  const file = path.join(base, 'a-file');
  fs.writeFileSync(file, 'keep me');
  const readOnly = path.join(base, 'read-only');
  fs.mkdirSync(readOnly, { mode: 0o555 });
  fs.chmodSync(readOnly, 0o555);
  const cases: Array<[string, RegExp, { uid?: number; gid?: number }?]> = [
    [file, /^error: --state-dir .*a-file: not a directory \(it is a regular file\)$/],
    [path.join(file, 'sub'), /^error: --state-dir .*a-file\/sub: .*a-file is not a directory \(it is a regular file\)$/],
    ['/proc/self', /^error: --state-dir \/proc\/self: cannot create files in it \(.*\)$/],
    ['/proc/self/new/deeper', /^error: --state-dir \/proc\/self\/new\/deeper: cannot create the directory \/proc\/self\/new \(.*\)$/],
  ];
  // root may write anywhere: the unwritable directory is tried as nobody then.
  const asRoot = process.getuid?.() === 0;
  const nobody = fs.readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[0] === 'nobody');
  if (!asRoot) cases.push([readOnly, /^error: --state-dir .*read-only: cannot create files in it \(permission denied, EACCES\)$/]);
  else if (nobody) cases.push([readOnly, /^error: --state-dir .*read-only: cannot create files in it \(permission denied, EACCES\)$/, { uid: Number(nobody[2]), gid: Number(nobody[3]) }]);
  for (const [stateDir, message, user] of cases) {
    const { args } = await devArgs([], stateDir);
    const r = await devUntilExit(args, user);
    expect({ stateDir, code: r.code, lines: r.output.trimEnd().split('\n') }).toEqual({ stateDir, code: 2, lines: [expect.stringMatching(message)] });
  }
  expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
  expect(fs.readdirSync(readOnly)).toEqual([]);
  fs.rmSync(base, { recursive: true, force: true });
}, 120_000);

test("a user's Temporal Cloud settings in the environment (a profile, an API key, TLS, another namespace) do not reach the stack's worker", async () => {
  const cloudFile = path.join(specDir, 'cloud.toml');
  fs.writeFileSync(cloudFile, '[profile.cloud]\naddress = "127.0.0.1:1"\nnamespace = "ns.acct"\napi_key = "cloud-key"\n[profile.cloud.tls]\nserver_name = "ns.acct.tmprl.cloud"\n');
  const cloud = {
    TEMPORAL_CONFIG_FILE: cloudFile,
    TEMPORAL_PROFILE: 'cloud',
    TEMPORAL_ADDRESS: '127.0.0.1:1',
    TEMPORAL_NAMESPACE: 'ns.acct',
    TEMPORAL_API_KEY: 'cloud-key',
    TEMPORAL_TLS: '1',
    TEMPORAL_GRPC_META_X_TENANT: 'acct',
  };
  const stack = await startStack([], { env: cloud }); // a worker that read any of them would never be ready
  stacks.push(stack);
  const environ = fs.readFileSync(`/proc/${stack.workerPid()}/environ`, 'utf8').split('\0');
  expect(environ.filter((e) => e.startsWith('TEMPORAL_'))).toEqual([]);
  // The line it prints to try the stack leaves the user's settings out (they point elsewhere).
  await waitUntil(() => /^ {2}stop: /m.test(stack.output()), 'the lines after ready:');
  expect(stack.output()).toMatch(new RegExp(`^ {2}try: rollout --disable-config-file --disable-config-env --address ${stack.temporalAddress.replace(/\./g, '\\.')} deploy`, 'm'));
  expect(stack.output()).toMatch(/^ {2}note: your Temporal settings are for another server \(address from TEMPORAL_ADDRESS; TLS from TEMPORAL_TLS=1; API key from TEMPORAL_API_KEY; namespace "ns\.acct" from TEMPORAL_NAMESPACE\)/m);
  await serve(stack, 'cloudless');
}, 300_000);

test('rollout worker against a running Temporal without its namespace: exit 2 naming TEMPORAL_NAMESPACE', async () => {
  const stack = stacks[0] ?? (await startStack());
  if (!stacks.includes(stack)) stacks.push(stack);
  const tokenFile = path.join(stack.stateDir, 'router.token');
  const workerDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-worker-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: stack.temporalAddress,
    TEMPORAL_NAMESPACE: 'no-such-namespace',
    ROLLOUT_STATE_DIR: workerDir,
    ROUTER_ADMIN_URL: 'http://127.0.0.1:1',
    ROUTER_PUBLIC_URL: stack.routerUrl,
    ROUTER_TOKEN_FILE: tokenFile,
  };
  const r = await devUntilExit([path.join(ROOT, 'bin', 'rollout.js'), 'worker'], { env });
  expect({ code: r.code, lines: r.output.trimEnd().split('\n') }).toEqual({
    code: 2,
    lines: [`error: TEMPORAL_NAMESPACE: Temporal at ${stack.temporalAddress} has no namespace "no-such-namespace"`],
  });
  fs.rmSync(workerDir, { recursive: true, force: true });
}, 300_000);
