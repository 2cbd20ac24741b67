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
}, 120_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function deployWait(name: string, file: string, yaml: string) {
  return rolloutCli(stack, ['deploy', writeSpec(specDir, file, yaml), '--wait']);
}

test.each([
  ['rolling', 'zd-roll', {}],
  ['blue_green', 'zd-bg', {}],
])('%s update v1 → v2 drops no request', async (strategy, name) => {
  expect((await deployWait(name, `${name}-v1.yaml`, modelServerSpec({ name, version: 'v1', strategy }))).code).toBe(0);
  const load = startLoad(`${stack.routerUrl}/${name}`);
  await new Promise((r) => setTimeout(r, 500));
  const r = await deployWait(name, `${name}-v2.yaml`, modelServerSpec({ name, version: 'v2', strategy }));
  await new Promise((r) => setTimeout(r, 500));
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
  expect((await deployWait(name, `${name}-v1.yaml`, modelServerSpec({ name, version: 'v1' }))).code).toBe(0);
  const load = startLoad(`${stack.routerUrl}/${name}`);
  // The second v2 replica loads slowly, so the rollout sits at a 50/50 split.
  const slowSecond = modelServerSpec({ name, version: 'v2', extraEnv: { LOAD_DELAY_SECONDS: '1' } });
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, `${name}-v2.yaml`, slowSecond)])).code).toBe(0);
  let split = false;
  for (let i = 0; i < 100 && !split; i++) {
    const s = JSON.parse((await rolloutCli(stack, ['status', name, '-o', 'json'])).stdout);
    split = s.traffic['1'] > 0 && s.traffic['2'] > 0;
    if (!split) await new Promise((r) => setTimeout(r, 100));
  }
  expect(split).toBe(true);
  await new Promise((r) => setTimeout(r, 300)); // v2 serves some of the load
  expect((await rolloutCli(stack, ['rollback', name])).code).toBe(0);
  let final;
  for (let i = 0; i < 100; i++) {
    final = JSON.parse((await rolloutCli(stack, ['status', name, '-o', 'json'])).stdout);
    if (!final.rollout) break;
    await new Promise((r) => setTimeout(r, 300));
  }
  expect(final.lastRollout).toMatchObject({ version: 2, outcome: 'rolled_back' });
  await new Promise((r) => setTimeout(r, 500));
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
  }).then(async (res) => ({ replica: res.headers.get('x-rollout-replica'), text: await res.text() }));
  await new Promise((r) => setTimeout(r, 300));
  const r = await deployWait(name, `${name}-v2.yaml`, slowTokens('v2'));
  expect(r.code).toBe(0);
  const { replica, text } = await stream;
  expect(replica).toMatch(/^zd-stream-v1-/);
  expect(text).toContain('"model_version":"v1"');
  expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  expect(text.match(/^data: /gm)?.length).toBe(42); // 40 tokens, the finish chunk, [DONE]
  expect(replicaProcesses(name).filter((p) => p.replicaId === replica)).toEqual([]);
}, 180_000);
