/**
 * A canary held for a week at `{pause: {}}` (analysed every 10 minutes) and a day in manual mode
 * (analysed every minute):
 * the rollout workflow continues as new before its history nears Temporal's limits, carrying
 * its state (step, hold, analysis tally, traffic, replicas), and is still controllable after.
 * Real time-skipping server, a week of skipped time; activities are in-memory fakes.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkerMetrics } from '../../src/observability/metrics';
import { rolloutMetricsSinks } from '../../src/observability/metrics-sinks';
import type { StatsSnapshot } from '../../src/plan/analysis';
import { parseSamples } from '../../src/router/prometheus-text';
import type { RolloutSpec, ServiceSpec } from '../../src/spec/types';
import { ROLLOUT_HISTORY_EVENTS } from '../../src/workflows/rollout';
import { controlUpdate, rolloutStatusQuery } from '../../src/workflows/messages';
import type { RolloutStatus } from '../../src/workflows/types';
import type { FakeWorld } from '../helpers/fake-activities';
import { timeSkippingServerPerTest } from '../helpers/temporal-env';
import { serviceSpec, waitFor, workflowHarness } from '../helpers/workflow-harness';

let env: TestWorkflowEnvironment;
// The worker's rollout metrics: a rollout continued as new is still one rollout started.
let metrics: WorkerMetrics;
const { withWorker, deploy, rolloutResult } = workflowHarness(() => env, { sinks: () => rolloutMetricsSinks(metrics) });
timeSkippingServerPerTest((created) => (env = created));
beforeEach(() => {
  metrics = new WorkerMetrics();
});
/** `label/label → value` of one of the rollout counters. */
async function counted(name: string): Promise<Record<string, number>> {
  const samples = parseSamples(await metrics.registry.metrics(), new Set([name]));
  return Object.fromEntries(samples.map((s) => [Object.values(s.labels).join('/'), s.value]));
}

const DAY_MINUTES = 24 * 60;
const WEEK_MINUTES = 7 * DAY_MINUTES;
/** Temporal's hard limit, at which it terminates a workflow (and its warning threshold). */
const HISTORY_LIMIT = 51_200;
const HISTORY_WARNING = 10_240;

const held = (name: string, rollout: Partial<RolloutSpec>, interval = '1m'): ServiceSpec =>
  serviceSpec({
    name,
    replicas: 2,
    rollout: {
      strategy: 'canary',
      max_surge: 1,
      max_unavailable: 0,
      timeout: '120m',
      analysis: { interval, max_error_rate: 0.05, min_requests: 10, failure_limit: 3 },
      ...rollout,
    },
  });
const v2 = (s: ServiceSpec): ServiceSpec => ({ ...s, env: { MODEL_VERSION: 'v2' } });
const statusOf = (id: string): Promise<RolloutStatus> => env.client.workflow.getHandle(id).query(rolloutStatusQuery);

/** Healthy traffic for every minute of the week (and a day more): each check passes. */
function healthyWeek(world: FakeWorld, service: string): void {
  const reads: StatsSnapshot[] = [];
  for (let i = 0; i <= WEEK_MINUTES + DAY_MINUTES; i++) {
    reads.push({ '1': { requests: 100 * i, errors5xx: 0, ttfbBuckets: [] }, '2': { requests: 100 * i, errors5xx: 0, ttfbBuckets: [] } });
  }
  world.stats.set(service, reads);
}

/** Every run of the workflow, first to last, with its event count and how it ended. */
async function runsOf(workflowId: string): Promise<{ events: number; last: string }[]> {
  const first = await env.client.workflow.getHandle(workflowId).describe();
  let runId: string | undefined = (first.raw.workflowExecutionInfo?.firstRunId as string | undefined) ?? undefined;
  const runs: { events: number; last: string }[] = [];
  while (runId) {
    const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
    const events = history.events ?? [];
    const last = events[events.length - 1];
    runs.push({ events: events.length, last: last?.workflowExecutionContinuedAsNewEventAttributes ? 'continued as new' : String(last?.eventType) });
    runId = last?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
  }
  return runs;
}

/** What must survive a continue-as-new unchanged. */
const heldState = (s: RolloutStatus) => ({
  phase: s.phase,
  mode: s.mode,
  canaryPercent: s.canaryPercent,
  targetPercent: s.targetPercent,
  stepIndex: s.stepIndex,
  traffic: s.traffic,
  endpoint: s.endpoint,
  replicas: s.replicas.map((r) => `${r.id}:${r.status}`),
});

/** Holds the rollout `minutes` of skipped time once `holding`; checks what continue-as-new must keep. */
async function holdFor(minutes: number, everyMinutes: number, world: FakeWorld, rolloutId: string, holding: (s: RolloutStatus) => boolean) {
  // Reaching the hold takes a passed check (the analysis's second reading, a minute on): skip time to it.
  await waitFor(async () => holding(await statusOf(rolloutId)) || (await env.sleep('1 minute'), false));
  const before = await statusOf(rolloutId);
  const launchedBefore = [...world.launched];
  const terminatedBefore = [...world.terminated];
  await env.sleep(`${minutes} minutes`);
  // The analysis reads once a minute: wait until the week's readings are all in.
  await waitFor(async () => ((await statusOf(rolloutId)).analysis?.passed ?? 0) >= (minutes - 60) / everyMinutes);
  const after = await statusOf(rolloutId);
  expect(heldState(after)).toEqual(heldState(before));
  expect(after.run).toBeGreaterThan(1);
  expect(after.analysis).toMatchObject({ failed: 0, failureLimit: 3 });
  // Not a replica started or stopped by continuing as new.
  expect(world.launched).toEqual(launchedBefore);
  expect(world.terminated).toEqual(terminatedBefore);
  const runs = await runsOf(rolloutId);
  expect(runs.length).toBe(after.run);
  for (const run of runs) expect(run.events).toBeLessThan(Math.min(HISTORY_WARNING, HISTORY_LIMIT));
  for (const run of runs.slice(0, -1)) expect(run.last).toBe('continued as new');
  // Continued long before the limit (the server suggests it at ~4,000 events; ROLLOUT_HISTORY_EVENTS otherwise).
  expect(runs[0].events).toBeLessThanOrEqual(ROLLOUT_HISTORY_EVENTS + 100);
  return runs;
}

// A week analysed every 10 minutes and a day analysed every minute: either way a run ends near
// 4,000 events (a week of checks every minute is 7× the day's runs, and ~10 minutes of real time
// on the test server, too slow for npm test).
test('a canary held at {pause: {}} for a week, analysed every 10 minutes, continues as new and then promotes', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = held('weekpause', { steps: [{ weight: 50 }, { pause: {} }, { weight: 100 }] }, '10m');
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    healthyWeek(world, 'weekpause');
    const d2 = await deploy(tq, v2(v1));
    const runs = await holdFor(WEEK_MINUTES, 10, world, d2.rolloutWorkflowId, (s) => s.stepIndex === 1 && s.canaryPercent === 50);
    console.log(`held a week at {pause: {}}: ${runs.length} runs of ${runs.map((r) => r.events).join(', ')} events`);
    await env.client.workflow.getHandle(d2.rolloutWorkflowId).executeUpdate(controlUpdate, { args: [{ action: 'advance' }] });
    const result = await rolloutResult(d2.rolloutWorkflowId);
    expect(result.outcome).toBe('succeeded');
    expect(result.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['2:READY', '2:READY']);
    await waitFor(async () => (await counted('rollout_rollouts_finished_total'))['canary/succeeded'] === 2);
    expect(await counted('rollout_rollouts_started_total')).toEqual({ canary: 2 });
    // Every v1 replica was stopped once, no v2 replica started twice.
    expect(world.running.size).toBe(2);
    expect(new Set(world.launched).size).toBe(world.launched.length);
  });
}, 600_000);

test('a canary held in manual mode for a day continues as new; a canary replica lost afterwards still rolls it back', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = held('weekmanual', { steps: [{ weight: 50 }, { weight: 100 }] });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    healthyWeek(world, 'weekmanual');
    const d2 = await deploy(tq, v2(v1), { canaryPercent: 50 });
    await holdFor(DAY_MINUTES, 1, world, d2.rolloutWorkflowId, (s) => s.mode === 'manual' && s.canaryPercent === 50);
    // The continued run watches the replicas it took over: the canary's loss is the new version failing.
    const canaryReplica = (await statusOf(d2.rolloutWorkflowId)).replicas.find((r) => r.version === 2)!;
    world.kill(canaryReplica.id);
    const result = await rolloutResult(d2.rolloutWorkflowId);
    expect(result.outcome).toBe('rolled_back');
    expect(result.reason).toContain(canaryReplica.id);
    expect(result.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['1:READY', '1:READY']);
    expect(world.running.size).toBe(2);
    // v1 and v2 started once each, though v2 ran in several runs; v2 ended once, after a day.
    await waitFor(async () => (await counted('rollout_rollouts_finished_total'))['canary/rolled_back'] === 1);
    expect(await counted('rollout_rollouts_started_total')).toEqual({ canary: 2 });
    expect(await counted('rollout_rollouts_finished_total')).toEqual({ 'canary/succeeded': 1, 'canary/rolled_back': 1 });
    const hours = parseSamples(await metrics.registry.metrics(), new Set(['rollout_rollout_duration_seconds_sum'])).find((s) => s.labels.outcome === 'rolled_back')!.value / 3600;
    expect(hours).toBeGreaterThan(24);
  });
}, 600_000);
