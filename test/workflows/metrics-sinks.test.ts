/**
 * The rollout workflow's metrics sink on the time-skipping test server, real worker, in-memory
 * activities: each rollout is counted started once and finished once with its outcome and
 * strategy, in workflow time; a cancelled one as `cancelled`. (A rollout continued as new
 * is counted once: test/workflows/long-hold.) The replicas' states (READY, STARTING, …) reach
 * `rollout_replicas` through the same sink: the rollout's while it runs, the service's after.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkerMetrics } from '../../src/observability/metrics';
import { rolloutMetricsSinks } from '../../src/observability/metrics-sinks';
import { parseSamples, type Sample } from '../../src/router/prometheus-text';
import type { ReplicaStateReport } from '../../src/workflows/metrics-sink';
import { rolloutStatusQuery, serviceStatusQuery } from '../../src/workflows/messages';
import { WATCH_WINDOW_MS } from '../../src/workflows/serving-watch';
import { timeSkippingServerPerTest } from '../helpers/temporal-env';
import { serviceSpec, waitFor, workflowHarness } from '../helpers/workflow-harness';

let env: TestWorkflowEnvironment;
let metrics: WorkerMetrics;
/** Every replica-state report the worker got, in order (the gauge keeps only the latest per service). */
let reports: Array<{ workflowId: string; service: string; replicas: ReplicaStateReport[] }>;
const { withWorker, deploy, rolloutResult } = workflowHarness(() => env, { sinks: () => rolloutMetricsSinks(metrics) });
timeSkippingServerPerTest((created) => (env = created));
beforeEach(() => {
  metrics = new WorkerMetrics();
  reports = [];
  const reported = metrics.replicaStatesReported.bind(metrics);
  metrics.replicaStatesReported = (workflowId, service, replicas) => {
    reports.push({ workflowId, service, replicas });
    reported(workflowId, service, replicas);
  };
});

const NAMES = new Set(['rollout_rollouts_started_total', 'rollout_rollouts_finished_total', 'rollout_rollout_duration_seconds_count', 'rollout_rollout_duration_seconds_sum']);
const samples = async (): Promise<Sample[]> => parseSamples(await metrics.registry.metrics(), NAMES);
/** `rollout_replicas` as {"provider/state": n}, the series that are not 0. */
const replicaGauge = async (): Promise<Record<string, number>> =>
  Object.fromEntries(parseSamples(await metrics.registry.metrics(), new Set(['rollout_replicas'])).filter((s) => s.value !== 0).map((s) => [`${s.labels.provider}/${s.labels.state}`, s.value]));
const series = (all: Sample[], name: string) => Object.fromEntries(all.filter((s) => s.name === name).map((s) => [Object.values(s.labels).join('/'), s.value]));

test('a first deploy and a rolling update that succeed, a blue-green that rolls back: counted by strategy and outcome', async () => {
  await withWorker({ 3: { kind: 'fail', message: 'model failed to load' } }, async (_world, tq) => {
    const v1 = serviceSpec({ name: 'counted' });
    expect((await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId)).outcome).toBe('succeeded');
    const v2 = { ...v1, env: { MODEL_VERSION: 'v2' } };
    expect((await rolloutResult((await deploy(tq, v2)).rolloutWorkflowId)).outcome).toBe('succeeded');
    const v3 = { ...v1, env: { MODEL_VERSION: 'v3' }, rollout: { ...v1.rollout, strategy: 'blue_green' as const } };
    expect((await rolloutResult((await deploy(tq, v3)).rolloutWorkflowId)).outcome).toBe('rolled_back');
    // The sink runs as the worker completes the workflow task, around when the result is there.
    await waitFor(async () => Object.keys(series(await samples(), 'rollout_rollouts_finished_total')).length === 2);
    const all = await samples();
    expect(series(all, 'rollout_rollouts_started_total')).toEqual({ rolling: 2, blue_green: 1 });
    expect(series(all, 'rollout_rollouts_finished_total')).toEqual({ 'rolling/succeeded': 2, 'blue_green/rolled_back': 1 });
    expect(series(all, 'rollout_rollout_duration_seconds_count')).toEqual({ 'rolling/succeeded': 2, 'blue_green/rolled_back': 1 });
    // Workflow time: the fake replicas are ready at once, so a rollout takes no skipped hour.
    for (const value of Object.values(series(all, 'rollout_rollout_duration_seconds_sum'))) {
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(3600);
    }
  });
});

test('an in-place update is counted as in_place; a rollout cancelled from outside as cancelled', async () => {
  await withWorker({ 3: { kind: 'never' } }, async (world, tq) => {
    const v1 = serviceSpec({ name: 'inplace' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    // Only the replica count changes: no new replica, the update is applied in place.
    const d2 = await deploy(tq, { ...v1, replicas: 3 });
    expect(d2.mode).toBe('in_place');
    expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('succeeded');
    const d3 = await deploy(tq, { ...v1, replicas: 3, env: { MODEL_VERSION: 'v3' } });
    const h = env.client.workflow.getHandle(d3.rolloutWorkflowId);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).replicas.some((r) => r.version === 3 && world.running.has(r.id)));
    // The rollout's report: the 3 serving replicas, and the one (max_surge 1) that never gets ready
    // (PROVISIONING: a batched rollout starts a replica in one activity).
    await waitFor(async () => {
      const gauge = await replicaGauge();
      return Object.keys(gauge).length === 2 && gauge['local/READY'] === 3 && gauge['local/PROVISIONING'] === 1;
    });
    await h.cancel();
    await waitFor(async () => 'rolling/cancelled' in series(await samples(), 'rollout_rollouts_finished_total'));
    const all = await samples();
    expect(series(all, 'rollout_rollouts_started_total')).toEqual({ rolling: 2, in_place: 1 });
    expect(series(all, 'rollout_rollouts_finished_total')).toEqual({ 'rolling/succeeded': 1, 'in_place/succeeded': 1, 'rolling/cancelled': 1 });
  });
});

test('replica states: a rolling v1→v2 of 2 replicas shows its replicas starting, and ends at READY 2, nothing else', async () => {
  await withWorker({}, async (_world, tq) => {
    const v1 = serviceSpec({ name: 'states' });
    expect((await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId)).outcome).toBe('succeeded');
    await waitFor(async () => JSON.stringify(await replicaGauge()) === JSON.stringify({ 'local/READY': 2 }));
    const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
    expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('succeeded');
    // The service reports once it has the rollout's result (the rollout cleared its own report).
    await waitFor(async () => JSON.stringify(await replicaGauge()) === JSON.stringify({ 'local/READY': 2 }));
    const v2Reports = reports.filter((r) => r.workflowId === d2.rolloutWorkflowId);
    // The rollout reported its new replicas on their way up: starting, then serving.
    for (const state of ['PROVISIONING', 'READY']) {
      expect(v2Reports.some((r) => r.replicas.some((x) => x.replicaId.includes('-v2-') && x.state === state))).toBe(true);
    }
    expect(v2Reports.some((r) => r.replicas.some((x) => x.replicaId.includes('-v1-') && x.state === 'SHUTTING_DOWN'))).toBe(true);
    // max_surge 1: never more than 3 live replicas in one report (one being drained and terminated
    // takes no surge room, as in Kubernetes); and the rollout's last report is its clear.
    for (const r of reports) expect(r.replicas.filter((x) => x.state !== 'SHUTTING_DOWN').length).toBeLessThanOrEqual(3);
    expect(v2Reports.at(-1)?.replicas).toEqual([]);
    // The last report of all is the service's: the two v2 replicas, READY, on the local provider.
    const last = reports.at(-1)!;
    expect(last.workflowId).toBe('service-states');
    expect(last.replicas.map((r) => [r.replicaId.replace(/-r\d+$/, ''), r.provider, r.state])).toEqual([
      ['states-v2', 'local', 'READY'],
      ['states-v2', 'local', 'READY'],
    ]);
  });
});

test('replica states: the service reports its healing (the lost replica FAILED, its replacement starting) and ends at READY 2', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = serviceSpec({ name: 'healed' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    await waitFor(async () => JSON.stringify(await replicaGauge()) === JSON.stringify({ 'local/READY': 2 }));
    const status = () => env.client.workflow.getHandle('service-healed').query(serviceStatusQuery);
    const [dead] = (await status()).replicas.map((r) => r.id);
    const reportsBefore = reports.length;
    world.kill(dead, 'exit code 137');
    await env.sleep(WATCH_WINDOW_MS); // the service's watch window ends (skipped time): the next watch sees the death
    await waitFor(async () => {
      const s = await status();
      return s.replicas.length === 2 && s.replicas.every((r) => r.status === 'READY') && !s.replicas.some((r) => r.id === dead);
    });
    await waitFor(async () => JSON.stringify(await replicaGauge()) === JSON.stringify({ 'local/READY': 2 }));
    const healing = reports.slice(reportsBefore);
    // All from the service (no rollout ran), through the healing: the dead one FAILED, then a replacement loading.
    expect(new Set(healing.map((r) => r.workflowId))).toEqual(new Set(['service-healed']));
    expect(healing.some((r) => r.replicas.some((x) => x.replicaId === dead && x.state === 'FAILED'))).toBe(true);
    expect(healing.some((r) => r.replicas.some((x) => x.replicaId !== dead && x.state === 'STARTING'))).toBe(true);
    expect(healing.at(-1)?.replicas.map((x) => x.state)).toEqual(['READY', 'READY']);
  });
});
