/**
 * End to end on the real stack: `rollout dev` (Temporal dev server, router, worker, local
 * provider), real replica processes (examples/model-server), real HTTP through the router,
 * and the real CLI.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveBinary, TEMPORAL_CLI } from '../../src/temporal/binaries';
import { modelServerSpec, replicaProcesses, rolloutCli, startStack, writeSpec, killProcess, type RunningStack } from '../helpers/dev-stack';

let stack: RunningStack;
let specDir: string;

beforeAll(async () => {
  specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-specs-'));
  // 4 GPUs of inventory (no real GPU needed): specs without accelerators are unaffected.
  stack = await startStack(['--gpus', '4']);
}, 240_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function complete(service: string): Promise<{ status: number; version: string | null; replica: string | null }> {
  const res = await fetch(`${stack.routerUrl}/${service}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'hello', max_tokens: 4 }),
  });
  await res.arrayBuffer();
  return { status: res.status, version: res.headers.get('x-model-version'), replica: res.headers.get('x-rollout-replica') };
}

async function statusJson(service: string) {
  const r = await rolloutCli(stack, ['status', service, '--output', 'json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON, read field by field
async function waitForStatus(service: string, ok: (status: any) => boolean, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await statusJson(service);
    if (ok(status)) return status;
    if (Date.now() > deadline) throw new Error(`status of ${service} never matched: ${JSON.stringify(status)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

const versionsOf = (service: string, version: number) =>
  replicaProcesses(service).filter((p) => p.replicaId.startsWith(`${service}-v${version}-`));

test('v1 (2 replicas) rolls to v2 through the router; status shows v2 READY; no v1 process is left', async () => {
  const v1 = writeSpec(specDir, 'chat-v1.yaml', modelServerSpec({ name: 'chat', version: 'v1' }));
  const r1 = await rolloutCli(stack, ['deploy', v1, '--wait']);
  expect(r1.code).toBe(0);
  expect((await complete('chat')).version).toBe('v1');
  expect(new Set(versionsOf('chat', 1).map((p) => p.replicaId)).size).toBe(2);

  const v2 = writeSpec(specDir, 'chat-v2.yaml', modelServerSpec({ name: 'chat', version: 'v2' }));
  const r2 = await rolloutCli(stack, ['deploy', v2, '--wait']);
  expect(r2.stderr).toMatch(/serves all traffic/);
  expect(r2.code).toBe(0);

  const status = await statusJson('chat');
  expect(status.version).toBe(2);
  expect(status.endpoint).toBe(`${stack.routerUrl}/chat`);
  expect(status.replicas).toHaveLength(2);
  for (const replica of status.replicas) {
    expect(replica).toMatchObject({ version: 2, status: 'READY' });
    expect(replica.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  }
  for (let i = 0; i < 6; i++) expect(await complete('chat')).toMatchObject({ status: 200, version: 'v2' });
  expect(versionsOf('chat', 1)).toEqual([]);
  expect(new Set(versionsOf('chat', 2).map((p) => p.replicaId)).size).toBe(2);
}, 180_000);

test('v2 never becomes ready: deploy --wait exits 1, v1 serves all traffic, no v2 process is left', async () => {
  const v1 = writeSpec(specDir, 'stuck-v1.yaml', modelServerSpec({ name: 'stuck', version: 'v1' }));
  expect((await rolloutCli(stack, ['deploy', v1, '--wait'])).code).toBe(0);
  const v2 = writeSpec(specDir, 'stuck-v2.yaml', modelServerSpec({ name: 'stuck', version: 'v2', extraEnv: { NEVER_READY: '1' }, initialDelay: 4 }));
  const r2 = await rolloutCli(stack, ['deploy', v2, '--wait']);
  expect(r2.code).toBe(1);
  expect(r2.stderr).toMatch(/rolled back: replica stuck-v2-r3 failed: .*not ready/);
  const status = await statusJson('stuck');
  expect(status.version).toBe(1);
  expect(status.traffic).toEqual({ '1': 100 });
  expect(status.replicas.map((r: { version: number; status: string }) => `${r.version}:${r.status}`)).toEqual(['1:READY', '1:READY']);
  for (let i = 0; i < 6; i++) expect(await complete('stuck')).toMatchObject({ status: 200, version: 'v1' });
  expect(versionsOf('stuck', 2)).toEqual([]);
}, 180_000);

test('a v2 process that dies while loading rolls back at once, long before its grace period', async () => {
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, 'crashy-v1.yaml', modelServerSpec({ name: 'crashy', version: 'v1' })), '--wait'])).code).toBe(0);
  const dying = modelServerSpec({ name: 'crashy', version: 'v2', extraEnv: { LOAD_DELAY_SECONDS: '30', EXIT_AFTER_SECONDS: '1' }, initialDelay: 600 });
  const r = await rolloutCli(stack, ['deploy', writeSpec(specDir, 'crashy-v2.yaml', dying), '--wait']);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/rolled back: replica crashy-v2-r3 failed: .*exited before it was ready/);
  const status = await statusJson('crashy');
  expect(status.version).toBe(1);
  expect(status.replicas.map((x: { version: number; status: string }) => `${x.version}:${x.status}`)).toEqual(['1:READY', '1:READY']);
  expect(versionsOf('crashy', 2)).toEqual([]);
}, 120_000);

test('the worker is killed mid-rollout and restarted: the rollout finishes with no leaked replica', async () => {
  const v1 = writeSpec(specDir, 'crash-v1.yaml', modelServerSpec({ name: 'crash', version: 'v1' }));
  expect((await rolloutCli(stack, ['deploy', v1, '--wait'])).code).toBe(0);
  const v2 = writeSpec(specDir, 'crash-v2.yaml', modelServerSpec({ name: 'crash', version: 'v2', extraEnv: { LOAD_DELAY_SECONDS: '4' } }));
  expect((await rolloutCli(stack, ['deploy', v2])).code).toBe(0);
  // Kill the worker while the first v2 replica is loading (4 s: its process is there first).
  const launchedBy = Date.now() + 60_000;
  while (versionsOf('crash', 2).length === 0) {
    if (Date.now() > launchedBy) throw new Error('no v2 replica process within 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = stack.workerPid();
  killProcess(pid, 'SIGKILL');
  // The dev supervisor restarts the worker; Temporal retries the interrupted activities.
  const deadline = Date.now() + 150_000;
  let status = await statusJson('crash');
  while ((status.version !== 2 || status.rollout) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    status = await statusJson('crash');
  }
  expect(stack.output()).toMatch(/restarting worker/);
  expect(stack.workerPid()).not.toBe(pid);
  expect(status.version).toBe(2);
  expect(status.replicas.map((r: { status: string }) => r.status)).toEqual(['READY', 'READY']);
  const live = new Set(replicaProcesses('crash').map((p) => p.replicaId));
  expect([...live].sort()).toEqual(status.replicas.map((r: { id: string }) => r.id).sort());
  const records = fs.readdirSync(path.join(stack.stateDir, 'local', 'replicas')).filter((f) => f.startsWith('crash-') && f.endsWith('.json'));
  expect(records.sort()).toEqual(status.replicas.map((r: { id: string }) => `${r.id}.json`).sort());
}, 240_000);

test('GPU-limited rollout: surge waits for GPUs, max_unavailable frees them, each replica gets its own GPUs', async () => {
  // 2 replicas × 2 GPUs = all 4 GPUs: a surge replica cannot get GPUs until a v1 replica goes.
  const spec = (version: string) => modelServerSpec({ name: 'gpu', version, accelerators: 'L4:2', maxUnavailable: 1 });
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, 'gpu-v1.yaml', spec('v1')), '--wait'])).code).toBe(0);
  const r2 = await rolloutCli(stack, ['deploy', writeSpec(specDir, 'gpu-v2.yaml', spec('v2')), '--wait']);
  expect(r2.code).toBe(0);
  // The planner never asked for GPUs that were not free: the provider refused no launch.
  const workerLog = fs.readFileSync(path.join(stack.stateDir, 'logs', 'worker.log'), 'utf8');
  expect(workerLog).toMatch(/gpu-v2-r3/);
  expect(workerLog).not.toMatch(/CapacityError/);
  const status = await statusJson('gpu');
  expect(status.replicas.map((r: { version: number; status: string; gpus: number }) => `${r.version}:${r.status}:${r.gpus}`)).toEqual(['2:READY:2', '2:READY:2']);
  const gpuSets: string[] = [];
  for (const r of status.replicas) {
    const health = (await (await fetch(`${r.endpoint}/health`)).json()) as { gpus: string };
    gpuSets.push(health.gpus);
  }
  expect(gpuSets.flatMap((g) => g.split(',')).sort()).toEqual(['0', '1', '2', '3']);
}, 180_000);

test('pause and rollback from the CLI, resume from `temporal workflow signal` on the service workflow', async () => {
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, 'ctl-v1.yaml', modelServerSpec({ name: 'ctl', version: 'v1' })), '--wait'])).code).toBe(0);
  // v2 loads for far longer than this test takes, so the rollout is still running at each step
  // however slow the machine is; the rollback removes the loading replica.
  const slow = modelServerSpec({ name: 'ctl', version: 'v2', extraEnv: { LOAD_DELAY_SECONDS: '600' }, initialDelay: 900 });
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, 'ctl-v2.yaml', slow)])).code).toBe(0);

  const paused = await rolloutCli(stack, ['pause', 'ctl']);
  expect(paused.code).toBe(0);
  expect(paused.stderr).toMatch(/pause accepted → rollout-ctl-v2/);
  await waitForStatus('ctl', (s) => s.rollout?.phase === 'paused');

  const temporal = resolveBinary(TEMPORAL_CLI, { install: false });
  expect(temporal).toBeDefined();
  const signal = spawnSync(temporal!, ['workflow', 'signal', '--address', stack.temporalAddress, '--workflow-id', 'service-ctl', '--name', 'resume'], { encoding: 'utf8' });
  expect(signal.status).toBe(0);
  await waitForStatus('ctl', (s) => s.rollout?.phase === 'rolling_out');

  expect((await rolloutCli(stack, ['rollback', 'ctl', '--reason', 'e2e check'])).code).toBe(0);
  const done = await waitForStatus('ctl', (s) => !s.rollout && s.lastRollout?.version === 2);
  expect(done.lastRollout).toMatchObject({ outcome: 'rolled_back', reason: 'manual rollback: e2e check' });
  expect(done.version).toBe(1);
  expect(done.replicas.map((r: { version: number; status: string }) => `${r.version}:${r.status}`)).toEqual(['1:READY', '1:READY']);
  for (let i = 0; i < 4; i++) expect(await complete('ctl')).toMatchObject({ status: 200, version: 'v1' });
  expect(versionsOf('ctl', 2)).toEqual([]);

  const idle = await rolloutCli(stack, ['pause', 'ctl']);
  expect(idle.code).toBe(2); // refused: nothing to pause (README: exit 2, nothing touched)
  expect(idle.stderr).toMatch(/no rollout in progress/);
}, 180_000);

test('an invalid spec exits 2 naming the field, and starts nothing', async () => {
  const bad = writeSpec(specDir, 'bad.yaml', 'name: broken\nreplicas: -1\nrun: serve\nrollout:\n  max_surge: 0\n  max_unavailable: 0\n  strategy: sideways\n');
  const r = await rolloutCli(stack, ['deploy', bad, '--wait']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/replicas/);
  expect(r.stderr).toMatch(/rollout\.strategy/);
  const s = await rolloutCli(stack, ['status', 'broken']);
  expect(s.code).toBe(1);
  expect(s.stderr).toMatch(/no service named "broken"/);
});

test('Temporal unreachable: exit 3 with a hint', async () => {
  const v1 = writeSpec(specDir, 'ok.yaml', modelServerSpec({ name: 'nowhere', version: 'v1' }));
  const r = await rolloutCli({ temporalAddress: '127.0.0.1:1' }, ['deploy', v1, '--wait']);
  expect(r.code).toBe(3);
  expect(r.stderr).toMatch(/cannot reach Temporal at 127\.0\.0\.1:1/);
});
