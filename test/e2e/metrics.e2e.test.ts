/**
 * The worker's metrics and logs on the real stack: `rollout dev --metrics-port` (its worker is
 * `rollout worker` with ROLLOUT_METRICS_PORT), real replicas, the real CLI. A rollout that
 * succeeds and one that rolls back move the counters, the histogram and the replica gauges (the
 * workflows' READY/STARTING view, the providers' running/exited one) with the right labels; the failed readiness wait is counted by activity type; every line of the
 * worker's log is JSON. And `rollout worker`'s bad metrics and log settings: exit 2, one line.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { parseSamples, type Sample } from '../../src/router/prometheus-text';
import { modelServerSpec, rolloutCli, runCli, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';

let stack: RunningStack;
let metricsPort: number;
let specDir: string;

const METRICS = new Set([
  'rollout_rollouts_started_total',
  'rollout_rollouts_finished_total',
  'rollout_rollout_duration_seconds_bucket',
  'rollout_rollout_duration_seconds_count',
  'rollout_rollout_duration_seconds_sum',
  'rollout_activity_failures_total',
  'rollout_replicas',
  'rollout_replica_processes',
  'rollout_replica_listing_errors_total',
]);

beforeAll(async () => {
  specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-metrics-specs-'));
  metricsPort = await freePort();
  stack = await startStack(['--metrics-port', String(metricsPort)]);
}, 240_000);

afterAll(async () => {
  await stack?.stop();
}, 60_000);

async function get(pathname: string): Promise<{ status: number; body: string; type: string }> {
  const res = await request(`http://127.0.0.1:${metricsPort}${pathname}`);
  return { status: res.statusCode, body: await res.body.text(), type: String(res.headers['content-type'] ?? '') };
}

async function scrape(): Promise<Sample[]> {
  const res = await get('/metrics');
  expect(res.status).toBe(200);
  expect(res.type).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseSamples(res.body, METRICS);
}

/** The value of the one sample with exactly these labels (0 when there is none). */
function value(samples: Sample[], name: string, labels: Record<string, string>): number {
  const matching = samples.filter((s) => s.name === name && Object.keys(labels).length === Object.keys(s.labels).length && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  expect(matching.length).toBeLessThanOrEqual(1);
  return matching[0]?.value ?? 0;
}

test('the ready line names the metrics URL; /healthz answers ok while the worker polls; other paths 404', async () => {
  expect(stack.output()).toContain(`metrics http://127.0.0.1:${metricsPort}/metrics`);
  expect(await get('/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
  expect((await get('/nothing')).status).toBe(404);
  // Nothing ran yet: no rollout series, and the replica gauges say 0 READY, 0 running (series there, at 0).
  const samples = await scrape();
  expect(samples.filter((s) => s.name === 'rollout_rollouts_started_total')).toEqual([]);
  expect(samples.filter((s) => s.name === 'rollout_replicas' && s.labels.provider === 'local' && s.labels.state === 'READY').map((s) => s.value)).toEqual([0]);
  expect(value(samples, 'rollout_replica_processes', { provider: 'local', state: 'running' })).toBe(0);
}, 60_000);

/** `rollout_replicas` of the local provider: READY, and the sum of every other state. */
function replicaStates(samples: Sample[]): { ready: number; notReady: number } {
  const local = samples.filter((s) => s.name === 'rollout_replicas' && s.labels.provider === 'local');
  return { ready: local.filter((s) => s.labels.state === 'READY').reduce((n, s) => n + s.value, 0), notReady: local.filter((s) => s.labels.state !== 'READY').reduce((n, s) => n + s.value, 0) };
}

/** Waits until the workflows' reports say `ready` replicas READY and none in another state. */
async function waitForReplicaStates(ready: number): Promise<void> {
  await waitUntil(
    async () => {
      const now = replicaStates(await scrape());
      return now.ready === ready && now.notReady === 0;
    },
    `rollout_replicas{provider="local",state="READY"} = ${ready} and 0 in other states`,
    60_000,
    250,
  );
}

test('a rollout that succeeds and one that rolls back: counters, duration histogram, activity failures and replicas by state', async () => {
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, 'm-v1.yaml', modelServerSpec({ name: 'metr', version: 'v1' })), '--wait'])).code).toBe(0);
  // The workflows' view: the service's 2 replicas READY (reported by the service once the rollout ended).
  await waitForReplicaStates(2);
  expect((await rolloutCli(stack, ['deploy', writeSpec(specDir, 'm-v2.yaml', modelServerSpec({ name: 'metr', version: 'v2' })), '--wait'])).code).toBe(0);
  await waitForReplicaStates(2);
  const stuck = modelServerSpec({ name: 'metr', version: 'v3', extraEnv: { NEVER_READY: '1' }, initialDelay: 4 });
  const r3 = await rolloutCli(stack, ['deploy', writeSpec(specDir, 'm-v3.yaml', stuck), '--wait']);
  expect(r3.code).toBe(1);
  expect(r3.stderr).toMatch(/rolled back/);

  // The sinks run when the worker completes the workflow task; the CLI may have heard of the end first.
  let samples: Sample[] = [];
  await waitUntil(async () => {
    samples = await scrape();
    return value(samples, 'rollout_rollouts_finished_total', { strategy: 'rolling', outcome: 'rolled_back' }) === 1;
  }, 'the rolled-back rollout counted', 60_000, 250);
  expect(value(samples, 'rollout_rollouts_started_total', { strategy: 'rolling' })).toBe(3);
  expect(value(samples, 'rollout_rollouts_finished_total', { strategy: 'rolling', outcome: 'succeeded' })).toBe(2);
  expect(samples.filter((s) => s.name === 'rollout_rollouts_finished_total').map((s) => s.labels.outcome).sort()).toEqual(['rolled_back', 'succeeded']);

  const succeeded = { strategy: 'rolling', outcome: 'succeeded' };
  expect(value(samples, 'rollout_rollout_duration_seconds_count', succeeded)).toBe(2);
  expect(value(samples, 'rollout_rollout_duration_seconds_count', { strategy: 'rolling', outcome: 'rolled_back' })).toBe(1);
  // Each rollout waited for replicas that load for 1 s: more than a second, less than the 5 min timeout.
  const sum = value(samples, 'rollout_rollout_duration_seconds_sum', succeeded);
  expect(sum).toBeGreaterThan(2);
  expect(sum).toBeLessThan(600);
  expect(value(samples, 'rollout_rollout_duration_seconds_bucket', { ...succeeded, le: '+Inf' })).toBe(2);
  expect(value(samples, 'rollout_rollout_duration_seconds_bucket', { ...succeeded, le: '600' })).toBe(2);

  // v3's replica never got ready: its readiness wait failed (and nothing else did).
  const failures = samples.filter((s) => s.name === 'rollout_activity_failures_total');
  expect(failures.map((s) => s.labels.activity_type)).toContain('startReplica');
  expect(value(samples, 'rollout_activity_failures_total', { activity_type: 'startReplica' })).toBeGreaterThanOrEqual(1);

  // After the rollback, v2's two replicas are READY, v3's is gone from the workflows' view…
  await waitForReplicaStates(2);
  // …and from the provider's: two run, v3's was terminated. (The listing is cached for 15 s.)
  await waitUntil(async () => {
    samples = await scrape();
    return value(samples, 'rollout_replica_processes', { provider: 'local', state: 'running' }) === 2;
  }, 'rollout_replica_processes{provider="local",state="running"} = 2', 60_000, 500);
  expect(samples.some((s) => s.name === 'rollout_replica_processes' && s.labels.provider === 'local' && s.labels.state === 'exited')).toBe(true);
  expect(value(samples, 'rollout_replica_listing_errors_total', { provider: 'local' })).toBe(0);
}, 300_000);

test("every line of the worker's log is a JSON object with level, msg and time; workflow lines name the service", () => {
  const lines = fs.readFileSync(path.join(stack.stateDir, 'logs', 'worker.log'), 'utf8').split('\n').filter((l) => l.trim() !== '');
  expect(lines.length).toBeGreaterThan(3);
  const entries = lines.map((line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new Error(`not JSON: ${line}`);
    }
    expect(typeof entry.level).toBe('number');
    expect(typeof entry.msg).toBe('string');
    expect(Number.isNaN(Date.parse(String(entry.time)))).toBe(false);
    return entry;
  });
  expect(entries.some((e) => /^worker ready: task queue gpu-rollout/.test(String(e.msg)))).toBe(true);
  // The rollback's warning from the workflow's `log`: with its workflow id and service.
  const rollingBack = entries.find((e) => e.msg === 'rolling back');
  expect(rollingBack).toMatchObject({ level: 40, workflowId: 'rollout-metr-v3', service: 'metr' });
}, 30_000);

describe('rollout worker refuses bad metrics and log settings: exit 2, one line naming the setting', () => {
  const env = (extra: Record<string, string>) => ({
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? os.tmpdir(),
    ROUTER_ADMIN_URL: 'http://127.0.0.1:1',
    ROUTER_PUBLIC_URL: 'http://127.0.0.1:2',
    ROUTER_TOKEN: 't',
    ROLLOUT_STATE_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-metrics-worker-')),
    TEMPORAL_ADDRESS: '127.0.0.1:1',
    ...extra,
  });
  test.each([
    [{ ROLLOUT_METRICS_PORT: 'abc' }, [], /^error: ROLLOUT_METRICS_PORT: expected a TCP port \(1–65535, or 0 for none\), got "abc"$/],
    [{ ROLLOUT_METRICS_PORT: '70000' }, [], /^error: ROLLOUT_METRICS_PORT: expected a TCP port .*got "70000"$/],
    [{}, ['--metrics-port', '-1'], /^error: --metrics-port: expected a TCP port .*got "-1"$/],
    [{ ROLLOUT_METRICS_PORT: '9464', ROLLOUT_METRICS_HOST: 'not an address' }, [], /^error: ROLLOUT_METRICS_HOST: expected an IP address .*got "not an address"$/],
    [{ ROLLOUT_LOG_LEVEL: 'loud' }, [], /^error: ROLLOUT_LOG_LEVEL: expected one of trace, debug, info, warn, error, got "loud"$/],
  ])('%j %j', async (extra, args, message) => {
    const r = await runCli(['worker', ...args], env(extra), 60_000);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(message);
  }, 60_000);

  test('a metrics port in use: exit 2 naming it, before Temporal is contacted', async () => {
    const r = await runCli(['worker', '--metrics-port', String(metricsPort)], env({}), 60_000);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`error: --metrics-port ${metricsPort}: cannot listen on 127.0.0.1:${metricsPort}: in use by another program`);
  }, 60_000);
});
