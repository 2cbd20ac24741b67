/**
 * Old histories replay against the current workflow code: a change that would break rollouts
 * already running (a command added, removed or reordered without `patched()`) fails here.
 *
 * `test/histories/*.json` are real histories of representative rollouts (each strategy, the
 * control messages, automatic and manual rollbacks, an in-place update, a self-healing
 * replacement, a GPU shortfall, a rollback cancelling a stuck launch, a canary hold that
 * continued as new, a hung replica replaced while its termination waits, a canary tagged with its
 * search attributes), recorded on the time-skipping server with in-memory activities by
 * `RECORD_HISTORIES=1 npx jest test/workflows/replay.test.ts`, which records only scenarios that
 * have no file yet. Never re-record an existing one to make a change pass (that is exactly the
 * break this test exists to catch): see "Changing a workflow safely" in the README.
 * `pre-healing-*.json` were recorded with the code before self-healing (commit 3edae5f): the
 * patched() branches in src/workflows/patches.ts keep them replaying.
 */
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { rolloutMetricsSinks } from '../../src/observability/metrics-sinks';
import fs from 'node:fs';
import path from 'node:path';
import { controlUpdate, gcUpdate, rolloutStatusQuery, serviceStatusQuery } from '../../src/workflows/messages';
import { WATCH_WINDOW_MS } from '../../src/workflows/serving-watch';
import { serviceWorkflowId } from '../../src/workflows/types';
import type { FakeWorld } from '../helpers/fake-activities';
import { timeSkippingServerPerTest, workflowBundle } from '../helpers/temporal-env';
import { serviceSpec, waitFor, workflowHarness } from '../helpers/workflow-harness';

const DIR = path.join(__dirname, '..', 'histories');
const recording = process.env.RECORD_HISTORIES === '1';

let env: TestWorkflowEnvironment;
const { withWorker, deploy, rolloutResult } = workflowHarness(() => env);

type Scenario = (world: FakeWorld, tq: string) => Promise<string[]>;
const v2 = <T extends { env: object }>(s: T): T => ({ ...s, env: { MODEL_VERSION: 'v2' } });
const canary = (name: string, steps: object[]) => serviceSpec({ name, replicas: 2, rollout: { strategy: 'canary', max_surge: 1, max_unavailable: 0, timeout: '120m', steps: steps as never } });

/** Deploys `v1`, then the same as v2; both rollouts run to their end. Their workflow ids. */
async function deployTwice(tq: string, v1: Parameters<typeof deploy>[1]): Promise<[string, string]> {
  const first = (await deploy(tq, v1)).rolloutWorkflowId;
  await rolloutResult(first);
  const d2 = await deploy(tq, v2(v1));
  await rolloutResult(d2.rolloutWorkflowId);
  return [first, d2.rolloutWorkflowId];
}

/** A canary (50%, a hold, 100%) rolled back at its hold while the v1 replicas it relaunches load slowly. Its id. */
async function canaryRolledBackWhileLoading(world: FakeWorld, tq: string, name: string): Promise<string> {
  const v1 = canary(name, [{ weight: 50 }, { pause: {} }, { weight: 100 }]);
  await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
  const d2 = await deploy(tq, v2(v1));
  const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
  await waitFor(async () => (await h.query(rolloutStatusQuery)).stepIndex === 1);
  // v1 replicas launched from now on load slowly: the rollback cancels or awaits their start.
  world.readiness.set(1, { kind: 'ready', afterMs: 3000 });
  await h.executeUpdate(controlUpdate, { args: [{ action: 'rollback', reason: 'replay' }] });
  await rolloutResult(d2.rolloutWorkflowId);
  return d2.rolloutWorkflowId;
}

/** Each scenario returns the ids of the workflows whose histories it recorded. */
const scenarios: Record<string, Scenario> = {
  // Batched steps (PATCHES.batchedReplicaSteps): starts carrying retirements, local traffic calls.
  async batched_rolling_4(_world, tq) {
    const [first, second] = await deployTwice(tq, serviceSpec({ name: 'h-batched', replicas: 4 }));
    return [first, second];
  },
  async batched_blue_green(_world, tq) {
    return [(await deployTwice(tq, serviceSpec({ name: 'h-bbg', rollout: { strategy: 'blue_green', max_surge: 1, max_unavailable: 0, timeout: '120m' } })))[1]];
  },
  async batched_canary_rollback_while_loading(world, tq) {
    return [await canaryRolledBackWhileLoading(world, tq, 'h-bcan')];
  },
  // Traffic with steps (PATCHES.trafficWithSteps): each step's traffic change rides on its first
  // start or its retirement, ordered; a canary's weights on calls of their own.
  async traffic_with_steps_rolling_surge_2(_world, tq) {
    const [first, second] = await deployTwice(tq, serviceSpec({ name: 'h-tws', replicas: 4, rollout: { strategy: 'rolling', max_surge: 2, max_unavailable: 0, timeout: '120m' } }));
    return [first, second];
  },
  async traffic_with_steps_blue_green(_world, tq) {
    return [(await deployTwice(tq, serviceSpec({ name: 'h-twsbg', rollout: { strategy: 'blue_green', max_surge: 1, max_unavailable: 0, timeout: '120m' } })))[1]];
  },
  async traffic_with_steps_canary_rollback_while_loading(world, tq) {
    return [await canaryRolledBackWhileLoading(world, tq, 'h-twscan')];
  },
  async rolling(_world, tq) {
    const v1 = serviceSpec({ name: 'h-rolling' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const d2 = await deploy(tq, v2(v1));
    await rolloutResult(d2.rolloutWorkflowId);
    return ['rollout-h-rolling-v1', d2.rolloutWorkflowId];
  },
  async blue_green(_world, tq) {
    const v1 = serviceSpec({ name: 'h-bg', rollout: { strategy: 'blue_green', max_surge: 1, max_unavailable: 0, timeout: '120m' } });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const d2 = await deploy(tq, v2(v1));
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async canary_pause_advance_promote(_world, tq) {
    const v1 = canary('h-canary', [{ weight: 50 }, { pause: { duration: '10m' } }, { pause: {} }, { weight: 100 }]);
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const d2 = await deploy(tq, v2(v1));
    const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).stepIndex === 1);
    await h.executeUpdate(controlUpdate, { args: [{ action: 'pause' }] });
    await h.executeUpdate(controlUpdate, { args: [{ action: 'resume' }] });
    await env.sleep('11 minutes');
    await waitFor(async () => (await h.query(rolloutStatusQuery)).stepIndex === 2);
    await h.executeUpdate(controlUpdate, { args: [{ action: 'advance' }] });
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async manual_percent_then_promote(_world, tq) {
    const v1 = serviceSpec({ name: 'h-manual', replicas: 4 });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const d2 = await deploy(tq, v2(v1), { canaryPercent: 25 });
    const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).canaryPercent === 25);
    await h.executeUpdate(controlUpdate, { args: [{ action: 'setCanaryPercent', percent: 50 }] });
    await waitFor(async () => (await h.query(rolloutStatusQuery)).canaryPercent === 50);
    await h.executeUpdate(controlUpdate, { args: [{ action: 'promote' }] });
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async manual_rollback(world, tq) {
    const v1 = serviceSpec({ name: 'h-rollback' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.readiness.set(2, { kind: 'never' });
    const d2 = await deploy(tq, v2(v1));
    const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).replicas.some((r) => r.version === 2));
    await h.executeUpdate(controlUpdate, { args: [{ action: 'rollback', reason: 'recorded' }] });
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async automatic_rollback_timeout(world, tq) {
    const v1 = serviceSpec({ name: 'h-timeout', rollout: { strategy: 'rolling', max_surge: 1, max_unavailable: 0, timeout: '30m' } });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.readiness.set(2, { kind: 'never' });
    const d2 = await deploy(tq, v2(v1));
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async in_place_scale(_world, tq) {
    const v1 = serviceSpec({ name: 'h-inplace' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const d2 = await deploy(tq, { ...v1, replicas: 3 });
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async gpu_shortfall_fails_fast(world, tq) {
    world.totalGpus = 0;
    const d1 = await deploy(tq, serviceSpec({ name: 'h-nogpu', resources: { provider: 'local', accelerators: 'L4:1' } }));
    await rolloutResult(d1.rolloutWorkflowId);
    return [d1.rolloutWorkflowId];
  },
  async rollback_cancels_stuck_launch(world, tq) {
    const v1 = serviceSpec({ name: 'h-stockout' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.launchFailures.set(2, { type: 'CapacityError', message: 'no GPU free' });
    const d2 = await deploy(tq, v2(v1));
    const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).replicas.some((r) => r.version === 2 && r.status === 'PROVISIONING'));
    await h.executeUpdate(controlUpdate, { args: [{ action: 'rollback', reason: 'stockout' }] });
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async canary_hold_continues_as_new(world, tq) {
    const spec = serviceSpec({
      name: 'h-can',
      replicas: 2,
      rollout: { strategy: 'canary', max_surge: 1, max_unavailable: 0, timeout: '120m', steps: [{ weight: 50 }, { pause: {} }, { weight: 100 }], analysis: { interval: '10m', max_error_rate: 0.05, min_requests: 10, failure_limit: 3 } },
    });
    await rolloutResult((await deploy(tq, spec)).rolloutWorkflowId);
    world.stats.set('h-can', Array.from({ length: 2000 }, (_, i) => ({ '1': { requests: 100 * i, errors5xx: 0, ttfbBuckets: [] }, '2': { requests: 100 * i, errors5xx: 0, ttfbBuckets: [] } })));
    const d2 = await deploy(tq, v2(spec));
    const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    const first = (await h.describe()).runId;
    // Held at {pause: {}} until the history is long enough to continue as new (~4,000 events).
    await waitFor(async () => (await h.query(rolloutStatusQuery)).run > 1 || (await env.sleep('1 day'), false));
    await h.executeUpdate(controlUpdate, { args: [{ action: 'advance' }] });
    await rolloutResult(d2.rolloutWorkflowId);
    // The run that continued as new, and the run that finished (it began from the carried state).
    return [`${d2.rolloutWorkflowId}@${first}`, d2.rolloutWorkflowId];
  },
  async self_healing_replacement(world, tq) {
    const v1 = serviceSpec({ name: 'h-heal' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.kill('h-heal-v1-r1');
    await env.sleep(WATCH_WINDOW_MS);
    const service = env.client.workflow.getHandle(serviceWorkflowId('h-heal'));
    await waitFor(async () => {
      const s = await service.query(serviceStatusQuery);
      return s.healing?.replaced === 1 && s.replicas.every((r) => r.status === 'READY');
    });
    // A deploy after the repair, so the service's history holds a whole repair and what follows.
    const d2 = await deploy(tq, v2(v1));
    await rolloutResult(d2.rolloutWorkflowId);
    return [serviceWorkflowId('h-heal')];
  },
  async service_forwards_compacted_signals(_world, tq) {
    const v1 = canary('h-signals', [{ weight: 50 }, { pause: {} }]);
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const d2 = await deploy(tq, v2(v1));
    const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).stepIndex === 1);
    const service = env.client.workflow.getHandle(serviceWorkflowId('h-signals'));
    await service.signal('setCanaryPercent', { percent: 'z'.repeat(100) });
    await service.signal('setCanaryPercent', 30);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).canaryPercent === 30);
    await service.signal('rollback', { reason: `recorded ${'r'.repeat(600)}` });
    await rolloutResult(d2.rolloutWorkflowId);
    return [serviceWorkflowId('h-signals'), d2.rolloutWorkflowId];
  },
  async self_healing_hung_replica(world, tq) {
    const v1 = serviceSpec({ name: 'h-hung' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const release = world.holdTermination('h-hung-v1-r1');
    world.kill('h-hung-v1-r1', 'failed 3 readiness probes in a row (last: timeout)');
    await env.sleep(WATCH_WINDOW_MS);
    const service = env.client.workflow.getHandle(serviceWorkflowId('h-hung'));
    // The replacement serves before the hung replica's termination ends.
    await waitFor(async () => (await service.query(serviceStatusQuery)).replicas.filter((r) => r.status === 'READY').length === 2);
    release();
    await waitFor(async () => {
      const s = await service.query(serviceStatusQuery);
      return s.replicas.length === 2 && s.replicas.every((r) => r.status === 'READY');
    });
    const d2 = await deploy(tq, v2(v1));
    await rolloutResult(d2.rolloutWorkflowId);
    return [serviceWorkflowId('h-hung')];
  },
  async stray_sweep_after_rollback(world, tq) {
    const v1 = serviceSpec({ name: 'h-stray', rollout: { strategy: 'rolling', max_surge: 1, max_unavailable: 0, timeout: '30m' } });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.running.add('h-stray-v2-r99');
    world.readiness.set(2, { kind: 'never' });
    const d2 = await deploy(tq, v2(v1));
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async canary_pause_before_traffic_with_analysis(world, tq) {
    const spec = serviceSpec({
      name: 'h-warm',
      replicas: 2,
      rollout: { strategy: 'canary', max_surge: 1, max_unavailable: 0, timeout: '120m', steps: [{ pause: { duration: '10m' } }, { weight: 100 }], analysis: { interval: '1m', max_error_rate: 0.05, min_requests: 10, failure_limit: 0 } },
    });
    await rolloutResult((await deploy(tq, spec)).rolloutWorkflowId);
    world.stats.set('h-warm', Array.from({ length: 60 }, (_, i) => ({ '1': { requests: 100 * i, errors5xx: 0, ttfbBuckets: [] }, '2': { requests: 100 * i, errors5xx: 0, ttfbBuckets: [] } })));
    const d2 = await deploy(tq, v2(spec));
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async terminate_fails_for_good(world, tq) {
    const v1 = serviceSpec({ name: 'h-noterm' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.terminateFailure = { type: 'CredentialsError', message: 'TerminateInstances: AuthFailure' };
    const d2 = await deploy(tq, v2(v1));
    await rolloutResult(d2.rolloutWorkflowId);
    return [d2.rolloutWorkflowId];
  },
  async self_healing_terminate_fails_then_works(world, tq) {
    await rolloutResult((await deploy(tq, serviceSpec({ name: 'h-healterm' }))).rolloutWorkflowId);
    const service = env.client.workflow.getHandle(serviceWorkflowId('h-healterm'));
    const [dead] = (await service.query(serviceStatusQuery)).replicas.map((r) => r.id);
    world.terminateFailure = { type: 'CredentialsError', message: 'TerminateInstances: AuthFailure' };
    world.kill(dead, 'instance terminated');
    await env.sleep(WATCH_WINDOW_MS);
    await waitFor(async () => (await service.query(serviceStatusQuery)).replicas.some((r) => r.id === dead && r.status === 'FAILED'));
    world.terminateFailure = undefined;
    await env.sleep('2 minutes');
    await waitFor(async () => {
      const s = await service.query(serviceStatusQuery);
      return s.replicas.length === 2 && s.replicas.every((r) => r.status === 'READY');
    });
    return [serviceWorkflowId('h-healterm')];
  },
  async search_attributes_canary(_world, tq) {
    // Recorded on a server with every rollout search attribute (createTimeSkippingEnv registers them).
    const v1 = canary('h-sa', [{ weight: 50 }, { pause: {} }, { weight: 100 }]);
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const d2 = await deploy(tq, v2(v1));
    const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).stepIndex === 1);
    await h.executeUpdate(controlUpdate, { args: [{ action: 'pause' }] });
    await h.executeUpdate(controlUpdate, { args: [{ action: 'promote' }] });
    await rolloutResult(d2.rolloutWorkflowId);
    return [serviceWorkflowId('h-sa'), d2.rolloutWorkflowId];
  },
  async cancelled_rollout_cleanup_and_gc(world, tq) {
    const v1 = serviceSpec({ name: 'h-gc' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.readiness.set(2, { kind: 'never' });
    const d2 = await deploy(tq, v2(v1));
    const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).replicas.some((r) => r.version === 2 && world.running.has(r.id)));
    await h.cancel();
    const service = env.client.workflow.getHandle(serviceWorkflowId('h-gc'));
    await waitFor(async () => (await service.query(serviceStatusQuery)).lastRollout?.version === 2);
    world.running.add('h-gc-v1-r99');
    await service.executeUpdate(gcUpdate, { args: [{ dryRun: true }] });
    await service.executeUpdate(gcUpdate, { args: [{}] });
    world.readiness.delete(2);
    const d3 = await deploy(tq, v2(v1));
    await rolloutResult(d3.rolloutWorkflowId);
    return [serviceWorkflowId('h-gc')];
  },
};

/**
 * Proto3 JSON (as `temporal workflow show --output json` writes it). historyToJSON needs the
 * proto types of the module instance that decoded the history; under Jest's module registry that
 * may be another one, so the message's own toJSON (the same mapping) is the fallback.
 */
function historyJson(history: Awaited<ReturnType<ReturnType<TestWorkflowEnvironment['client']['workflow']['getHandle']>['fetchHistory']>>): string {
  try {
    return historyToJSON(history);
  } catch {
    return JSON.stringify((history as unknown as { toJSON(): unknown }).toJSON(), null, 1);
  }
}

(recording ? describe : describe.skip)('recording histories (RECORD_HISTORIES=1)', () => {
  timeSkippingServerPerTest((created) => (env = created));
  test.each(Object.keys(scenarios))('%s', async (name) => {
    fs.mkdirSync(DIR, { recursive: true });
    // Histories already recorded stay as they are: they stand for rollouts already running.
    if (fs.readdirSync(DIR).some((f) => f.startsWith(`${name}--`))) return;
    await withWorker({}, async (world, tq) => {
      for (const recorded of await scenarios[name](world, tq)) {
        // `id@runId`: that run (a workflow that continued as new has several); `id`: the latest.
        const [id, runId] = recorded.split('@');
        const history = await env.client.workflow.getHandle(id, runId).fetchHistory();
        fs.writeFileSync(path.join(DIR, `${name}--${id}${runId ? '-first-run' : ''}.json`), historyJson(history) + '\n');
      }
    });
  }, 120_000);
});

test('every recorded history replays against the current workflow code', async () => {
  const files = fs.existsSync(DIR) ? fs.readdirSync(DIR).filter((f) => f.endsWith('.json')).sort() : [];
  expect(files.length).toBeGreaterThanOrEqual(Object.keys(scenarios).length);
  // The parsed JSON as it is: the worker converts it with its own proto types (historyFromJSON
  // here would use this module instance's, which Jest's registry may keep apart from them).
  const histories = files.map((file) => ({ workflowId: file, history: JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8')) as unknown }));
  const failures: string[] = [];
  let replayed = 0;
  for await (const result of Worker.runReplayHistories({ workflowBundle: await workflowBundle(), sinks: rolloutMetricsSinks() }, histories)) {
    replayed += 1;
    if (result.error) failures.push(`${result.workflowId}: ${result.error.message}`);
  }
  expect(failures).toEqual([]);
  expect(replayed).toBe(files.length);
}, 120_000);
