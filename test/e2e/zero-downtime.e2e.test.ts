/**
 * Zero downtime under load: concurrent plain and streaming requests run through the router
 * for the whole of each rollout; a single failed request or cut stream fails the test.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { modelServerSpec, replicaProcesses, rolloutCli, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';
import { startLoad } from '../helpers/load';

let stack: RunningStack;
let specDir: string;

beforeAll(async () => {
  specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-zd-'));
  stack = await startStack();
}, 240_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON, read field by field
async function waitForStatus(service: string, ok: (status: any) => boolean, timeoutMs = 120_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await rolloutCli(stack, ['status', service, '-o', 'json']);
    expect(r.code).toBe(0);
    const status = JSON.parse(r.stdout);
    if (ok(status)) return status;
    if (Date.now() > deadline) throw new Error(`status of ${service} never matched: ${JSON.stringify(status)}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

async function deployWait(name: string, file: string, yaml: string) {
  return rolloutCli(stack, ['deploy', writeSpec(specDir, file, yaml), '--wait']);
}

test.each([
  ['rolling', 'zd-roll', {}],
  ['blue_green', 'zd-bg', {}],
])('%s update v1 → v2 drops no request', async (strategy, name) => {
  expect((await deployWait(name, `${name}-v1.yaml`, modelServerSpec({ name, version: 'v1', strategy }))).code).toBe(0);
  const load = startLoad(`${stack.routerUrl}/${name}`);
  await load.until((l) => (l.versions.v1 ?? 0) >= 20, 'v1 answering 20 requests');
  const r = await deployWait(name, `${name}-v2.yaml`, modelServerSpec({ name, version: 'v2', strategy }));
  // Blue-green moves all traffic at the very end: wait until v2 has answered some of the load.
  await load.until((l) => (l.versions.v2 ?? 0) >= 20, 'v2 answering 20 requests');
  const report = await load.stop();
  expect(r.code).toBe(0);
  expect(report.failures).toEqual([]);
  expect(report.requests).toBeGreaterThan(50);
  expect(report.streams).toBeGreaterThan(10);
  expect(report.versions.v1).toBeGreaterThan(0);
  expect(report.versions.v2).toBeGreaterThan(0);
}, 180_000);

test('automatic rollback (v2 never ready) drops no request', async () => {
  const name = 'zd-auto';
  expect((await deployWait(name, `${name}-v1.yaml`, modelServerSpec({ name, version: 'v1' }))).code).toBe(0);
  const load = startLoad(`${stack.routerUrl}/${name}`);
  const r = await deployWait(name, `${name}-v2.yaml`, modelServerSpec({ name, version: 'v2', extraEnv: { NEVER_READY: '1' }, initialDelay: 3 }));
  const report = await load.stop();
  expect(r.code).toBe(1);
  expect(report.failures).toEqual([]);
  expect(Object.keys(report.versions)).toEqual(['v1']);
}, 180_000);

test('manual rollback after v2 took traffic drops no request', async () => {
  const name = 'zd-manual';
  // A canary that holds at 50% until told (a fixed load delay would race a busy machine for
  // the moment the split exists); the rollback then starts from a real v1/v2 split.
  const held = (version: string) => modelServerSpec({ name, version, strategy: 'canary', rolloutYaml: ['steps:', '  - weight: 50', '  - pause: {}'] });
  expect((await deployWait(name, `${name}-v1.yaml`, held('v1'))).code).toBe(0);
  const load = startLoad(`${stack.routerUrl}/${name}`);
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, `${name}-v2.yaml`, held('v2'))])).code).toBe(0);
  await waitForStatus(name, (s) => s.rollout?.canaryPercent === 50 && s.rollout?.stepIndex === 1);
  await load.until((l) => (l.versions.v2 ?? 0) >= 10, 'v2 answering 10 requests');
  expect((await rolloutCli(stack, ['rollback', name])).code).toBe(0);
  const final = await waitForStatus(name, (s) => !s.rollout);
  expect(final.lastRollout).toMatchObject({ version: 2, outcome: 'rolled_back' });
  expect(final.traffic).toEqual({ '1': 100 });
  const afterRollback = load.snapshot().requests;
  await load.until((l) => l.requests >= afterRollback + 20, '20 requests after the rollback');
  const report = await load.stop();
  expect(report.failures).toEqual([]);
  expect(report.versions.v2).toBeGreaterThan(0);
  expect(report.versions.v1).toBeGreaterThan(0);
  expect(replicaProcesses(name).filter((p) => p.replicaId.includes('-v2-'))).toEqual([]);
}, 180_000);

test('a long stream on an old replica completes although that replica is drained and terminated during it', async () => {
  const name = 'zd-stream';
  const slowTokens = (version: string) => modelServerSpec({ name, version, extraEnv: { TOKEN_DELAY_MS: '100' } });
  expect((await deployWait(name, `${name}-v1.yaml`, slowTokens('v1'))).code).toBe(0);
  // 40 tokens × 100 ms: the stream outlives the v1 replicas' time in rotation.
  const stream = fetch(`${stack.routerUrl}/${name}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'long' }], stream: true, max_tokens: 40 }),
  });
  // The answer's headers are in: the stream is on a v1 replica before the rollout begins.
  const res = await stream;
  const replica = res.headers.get('x-rollout-replica');
  const text = res.text();
  const r = await deployWait(name, `${name}-v2.yaml`, slowTokens('v2'));
  expect(r.code).toBe(0);
  expect(replica).toMatch(/^zd-stream-v1-/);
  expect(await text).toContain('"model_version":"v1"');
  expect((await text).trimEnd().endsWith('data: [DONE]')).toBe(true);
  expect((await text).match(/^data: /gm)?.length).toBe(42); // 40 tokens, the finish chunk, [DONE]
  expect(replicaProcesses(name).filter((p) => p.replicaId === replica)).toEqual([]);
}, 180_000);
