/**
 * Canary control end to end, on the real stack (`rollout dev`: Temporal dev server, router,
 * worker, local provider), real model-server replicas and the real CLI, with concurrent plain
 * and streaming requests running through the router for the whole of each rollout:
 *  - a canary whose own requests fail is rolled back by analysis (exit 1), and only its own
 *    application errors ever reach a client;
 *  - a manual canary percent set at deploy, from the CLI and from `temporal workflow signal`,
 *    shows up as the router's split, and promote finishes the rollout;
 *  - a change of the replica count alone is applied in place: no replica process restarts.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveBinary, TEMPORAL_CLI } from '../../src/temporal/binaries';
import { modelServerSpec, replicaProcesses, rolloutCli, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';
import { startLoad, type RunningLoad } from '../helpers/load';

let stack: RunningStack;
let specDir: string;

beforeAll(async () => {
  specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-canary-'));
  stack = await startStack();
}, 240_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms)); // between status polls only

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON, read field by field
async function statusJson(service: string): Promise<any> {
  const r = await rolloutCli(stack, ['status', service, '-o', 'json']);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON, read field by field
async function waitForStatus(service: string, ok: (status: any) => boolean, timeoutMs = 90_000): Promise<any> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await statusJson(service);
    if (ok(status)) return status;
    if (Date.now() > deadline) throw new Error(`status of ${service} never matched: ${JSON.stringify(status)}`);
    await sleep(300);
  }
}

/** The Temporal CLI, run asynchronously so that the load generator in this process keeps going. */
function temporalCli(args: string[]): Promise<{ code: number; output: string }> {
  const temporal = resolveBinary(TEMPORAL_CLI, { install: false });
  if (!temporal) throw new Error('the temporal CLI is not installed (.venv/bin/temporal)');
  return new Promise((resolve) => {
    const child = spawn(temporal, [...args, '--address', stack.temporalAddress], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code) => resolve({ code: code ?? -1, output }));
  });
}

/** Live replica processes of a version (each replica is a `sh -c` and the model server under it). */
const processesOf = (service: string, version: number) => replicaProcesses(service).filter((p) => p.replicaId.startsWith(`${service}-v${version}-`));
const replicaIdsOf = (processes: { replicaId: string }[]) => [...new Set(processes.map((p) => p.replicaId))].sort();
const byPid = (a: { pid: number }, b: { pid: number }) => a.pid - b.pid;
const replicaSummary = (status: { replicas: { version: number; status: string }[] }) => status.replicas.map((r) => `${r.version}:${r.status}`).sort();

interface Split {
  /** Percent of v2 answers among a batch of sequential requests sent by the test. */
  batchV2: number;
  batch: Record<string, number>;
  /** Percent of v2 answers among every request answered during the batch (batch + load). */
  windowV2: number;
  window: Record<string, number>;
}

/**
 * The traffic split as clients see it: `n` sequential plain requests, each answer's version
 * read from X-Rollout-Version (and checked against the model's own X-Model-Version). The
 * router picks by smooth weighted round-robin over *all* requests, and the load generator's
 * requests interleave with the batch, so the batch alone is a sample of that sequence; every
 * request answered during the batch (batch + load: a near-contiguous run of the router's picks)
 * is exact up to the few requests in flight at either end.
 */
async function measureSplit(service: string, load: RunningLoad, n = 100): Promise<Split> {
  const before = load.snapshot().versions;
  const batch: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${stack.routerUrl}/${service}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: `split ${i}`, max_tokens: 2 }),
    });
    await res.arrayBuffer();
    expect(res.status).toBe(200);
    const version = res.headers.get('x-rollout-version');
    expect(res.headers.get('x-model-version')).toBe(`v${version}`);
    batch[`v${version}`] = (batch[`v${version}`] ?? 0) + 1;
  }
  const after = load.snapshot().versions;
  const window: Record<string, number> = { ...batch };
  for (const [v, count] of Object.entries(after)) window[v] = (window[v] ?? 0) + count - (before[v] ?? 0);
  const share = (counts: Record<string, number>) => (100 * (counts.v2 ?? 0)) / Object.values(counts).reduce((a, b) => a + b, 0);
  return { batchV2: share(batch), batch, windowV2: share(window), window };
}

function expectSplitNear(split: Split, percent: number): void {
  // The window: exact up to edge effects (≤ 5 requests in flight) over hundreds of requests.
  expect(Math.abs(split.windowV2 - percent)).toBeLessThanOrEqual(8);
  // The batch alone is a sample of the interleaved sequence, whose phase against the load's
  // requests depends on timing: only that it saw both versions is certain.
  expect(split.batch.v1).toBeGreaterThan(0);
  expect(split.batch.v2).toBeGreaterThan(0);
}

test('a canary whose requests fail is rolled back by analysis; clients only ever see the canary\'s own errors', async () => {
  const name = 'cn-analysis';
  const canary = (version: string, extraEnv: Record<string, string> = {}) =>
    modelServerSpec({
      name,
      version,
      replicas: 2,
      extraEnv,
      strategy: 'canary',
      rolloutYaml: [
        'steps:',
        '  - weight: 50',
        '  - pause: 1m',
        'analysis:',
        '  interval: 3s',
        '  max_error_rate: 0.05',
        '  min_requests: 5',
        '  failure_limit: 0',
      ],
    });
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, `${name}-v1.yaml`, canary('v1')), '--wait'])).code).toBe(0);

  const load = startLoad(`${stack.routerUrl}/${name}`, { record5xxByVersion: true });
  await load.until((l) => l.requests >= 20, '20 requests through the router');
  // Every second request to v2 is answered 500 by the model server itself.
  const started = Date.now();
  const r = await rolloutCli(stack, ['deploy', writeSpec(specDir, `${name}-v2.yaml`, canary('v2', { FAIL_RATE: '0.5' })), '--wait']);
  const rolledBackAt = Date.now();
  // Load after the rollback: v1 only, no error.
  const afterRollback = load.snapshot().requests;
  await load.until((l) => l.requests >= afterRollback + 30, '30 requests after the rollback');
  const report = await load.stop();
  console.log(
    `[canary analysis] ${report.requests} requests (${report.streams} streams), versions ${JSON.stringify(report.versions)}, ` +
      `5xx by version ${JSON.stringify(report.errors5xx)}, deploy --wait took ${Math.round((rolledBackAt - started) / 1000)} s\n${r.stderr}`,
  );

  expect(r.stderr).toMatch(/rolled back: analysis failed: canary error rate \d+(\.\d+)?% > max 5% \(primary 0\.0%\)/);
  expect(r.code).toBe(1);

  const status = await statusJson(name);
  expect(status.version).toBe(1);
  expect(status.traffic).toEqual({ '1': 100 });
  expect(status.rollout).toBeUndefined();
  expect(status.lastRollout).toMatchObject({ version: 2, outcome: 'rolled_back' });
  expect(status.lastRollout.reason).toMatch(/^analysis failed: /);
  expect(replicaSummary(status)).toEqual(['1:READY', '1:READY']);
  expect(processesOf(name, 2)).toEqual([]);
  expect(replicaIdsOf(processesOf(name, 1))).toEqual(status.replicas.map((x: { id: string }) => x.id).sort());

  // No transport failure, no cut stream, no router-made 5xx; the only 5xx are v2's own.
  expect(report.failures).toEqual([]);
  expect(report.versions.v2).toBeGreaterThan(0);
  expect(report.errors5xx.v2).toBeGreaterThan(0);
  expect(Object.keys(report.errors5xx)).toEqual(['v2']);
  expect(report.errorLog.filter((e) => e.sentAt >= rolledBackAt)).toEqual([]);
}, 240_000);

test('manual canary percent: deploy --canary-percent, set-canary from the CLI, setCanaryPercent from `temporal workflow signal`, then promote', async () => {
  const started = Date.now();
  const name = 'cn-manual';
  const spec = (version: string) => modelServerSpec({ name, version, replicas: 4 });
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, `${name}-v1.yaml`, spec('v1')), '--wait'])).code).toBe(0);
  const load = startLoad(`${stack.routerUrl}/${name}`);
  await load.until((l) => l.requests >= 20, '20 requests through the router');
  const splits: Record<string, Split> = {};

  // Deploy v2 holding the canary at 25%.
  const d = await rolloutCli(stack, ['deploy', writeSpec(specDir, `${name}-v2.yaml`, spec('v2')), '--canary-percent', '25']);
  expect(d.code).toBe(0);
  expect(d.stderr).toMatch(/deploying cn-manual v2 \(rollout: env\.MODEL_VERSION changed: new replicas needed\)/);
  expect(d.stderr).toMatch(/manual mode: the canary holds at 25%/);
  let s = await waitForStatus(name, (x) => x.rollout?.canaryPercent === 25);
  expect(s.rollout).toMatchObject({ mode: 'manual', phase: 'manual', targetPercent: 25, fromVersion: 1, toVersion: 2 });
  expect(s.rollout.deadline).toBeNull(); // manual mode: no timeout rollback
  expect(s.traffic).toEqual({ '1': 75, '2': 25 });
  splits['25'] = await measureSplit(name, load);
  expectSplitNear(splits['25'], 25);

  // Out of range: refused by the CLI (exit 2) and nothing changes.
  const bad = await rolloutCli(stack, ['set-canary', name, '150']);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/expected a whole percent from 0 to 100 .*got "150"/);
  // Refused by the rollout's validator (pause makes no sense in manual mode): exit 2, nothing changes.
  const pause = await rolloutCli(stack, ['pause', name]);
  expect(pause.code).toBe(2);
  expect(pause.stderr).toMatch(/pause refused by rollout-cn-manual-v2: manual mode already holds the canary at 25%/);
  s = await statusJson(name);
  expect(s.rollout).toMatchObject({ mode: 'manual', phase: 'manual', canaryPercent: 25, targetPercent: 25 });
  expect(s.traffic).toEqual({ '1': 75, '2': 25 });

  // 50% from the CLI.
  const set50 = await rolloutCli(stack, ['set-canary', name, '50']);
  expect(set50.code).toBe(0);
  expect(set50.stderr).toMatch(/canary held at 50%/);
  s = await waitForStatus(name, (x) => x.rollout?.canaryPercent === 50);
  expect(s.rollout).toMatchObject({ mode: 'manual', targetPercent: 50 });
  splits['50'] = await measureSplit(name, load);
  expectSplitNear(splits['50'], 50);

  // 75% from the Temporal CLI, a signal to the service workflow that forwards it.
  const signal = await temporalCli(['workflow', 'signal', '--workflow-id', `service-${name}`, '--name', 'setCanaryPercent', '--input', '75']);
  expect(signal.code).toBe(0);
  s = await waitForStatus(name, (x) => x.rollout?.canaryPercent === 75);
  expect(s.rollout).toMatchObject({ mode: 'manual', targetPercent: 75 });
  splits['75'] = await measureSplit(name, load);
  expectSplitNear(splits['75'], 75);

  // Promote: v2 takes all traffic, the rollout succeeds, no v1 replica is left.
  const promote = await rolloutCli(stack, ['promote', name]);
  expect(promote.code).toBe(0);
  const done = await waitForStatus(name, (x) => !x.rollout && x.lastRollout?.version === 2);
  expect(done.lastRollout).toMatchObject({ version: 2, outcome: 'succeeded' });
  expect(done.version).toBe(2);
  expect(done.traffic).toEqual({ '2': 100 });
  expect(replicaSummary(done)).toEqual(['2:READY', '2:READY', '2:READY', '2:READY']);
  const final = await measureSplit(name, load, 20);
  expect(final.batch).toEqual({ v2: 20 });
  const report = await load.stop();
  expect(processesOf(name, 1)).toEqual([]);
  expect(replicaIdsOf(processesOf(name, 2))).toEqual(done.replicas.map((x: { id: string }) => x.id).sort());

  expect(report.failures).toEqual([]);
  expect(report.versions.v1).toBeGreaterThan(0);
  expect(report.versions.v2).toBeGreaterThan(0);
  console.log(
    `[manual canary] splits ${JSON.stringify(splits)}; load ${report.requests} requests (${report.streams} streams), ` +
      `versions ${JSON.stringify(report.versions)}, ${Math.round((Date.now() - started) / 1000)} s`,
  );
}, 300_000);

test('a change of the replica count alone is applied in place: no replica restarts; the same spec again is unchanged', async () => {
  const name = 'cn-inplace';
  const spec = (replicas: number) => modelServerSpec({ name, version: 'v1', replicas });
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, `${name}-2.yaml`, spec(2)), '--wait'])).code).toBe(0);
  const before = replicaProcesses(name).sort(byPid);
  expect(replicaIdsOf(before)).toHaveLength(2);

  const load = startLoad(`${stack.routerUrl}/${name}`);
  await load.until((l) => l.requests >= 20, '20 requests through the router');
  const three = writeSpec(specDir, `${name}-3.yaml`, spec(3));
  const started = Date.now();
  const r = await rolloutCli(stack, ['deploy', three, '--wait']);
  const deployed = Date.now();
  const afterDeploy = load.snapshot().requests;
  await load.until((l) => l.requests >= afterDeploy + 20, '20 requests after the deploy');
  const report = await load.stop();
  console.log(`[in place] load ${report.requests} requests (${report.streams} streams), deploy took ${Math.round((deployed - started) / 1000)} s\n${r.stderr}`);
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(/deploying cn-inplace v2 \(in place: only replicas changed: applied in place, nothing restarted\)/);
  expect(r.stderr).toMatch(/v2 serves all traffic/);

  const after = replicaProcesses(name).sort(byPid);
  // The original replicas' processes are the very same processes (same pids); one new replica.
  for (const p of before) expect(after).toContainEqual(p);
  const added = after.filter((p) => !before.some((b) => b.pid === p.pid));
  expect(replicaIdsOf(added)).toHaveLength(1);
  expect(replicaIdsOf(after)).toHaveLength(3);

  const status = await statusJson(name);
  expect(status.version).toBe(2);
  expect(status.traffic).toEqual({ '2': 100 });
  expect(status.lastRollout).toMatchObject({ version: 2, outcome: 'succeeded' });
  expect(replicaSummary(status)).toEqual(['2:READY', '2:READY', '2:READY']);
  expect(status.replicas.map((x: { id: string }) => x.id).sort()).toEqual(replicaIdsOf(after));

  expect(report.failures).toEqual([]);
  expect(Object.keys(report.versions)).toEqual(['v1']); // the model itself never changed

  // The identical spec again: nothing to do, no new version.
  const same = await rolloutCli(stack, ['deploy', three, '--wait']);
  expect(same.code).toBe(0);
  expect(same.stderr).toMatch(/cn-inplace unchanged at v2/);
  const again = await statusJson(name);
  expect(again.version).toBe(2);
  expect(again.rollout).toBeUndefined();
  expect(again.lastRollout).toMatchObject({ version: 2 });
  expect(replicaProcesses(name).sort(byPid)).toEqual(after);
}, 240_000);
