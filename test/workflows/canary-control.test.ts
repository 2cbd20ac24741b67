/**
 * Canary control on the real time-skipping test server (activities are in-memory fakes):
 * steps and timed pauses, manual percent, every control message in every phase, analysis
 * verdicts, constrained surge, in-place updates.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { StatsSnapshot } from '../../src/plan/analysis';
import type { RolloutSpec, ServiceSpec } from '../../src/spec/types';
import {
  advanceSignal,
  controlUpdate,
  pauseSignal,
  promoteSignal,
  rolloutStatusQuery,
  serviceStatusQuery,
  setCanaryPercentSignal,
} from '../../src/workflows/messages';
import type { ControlAction, ControlRequest, RolloutStatus } from '../../src/workflows/types';
import { serviceWorkflowId } from '../../src/workflows/types';
import { timeSkippingServerPerTest } from '../helpers/temporal-env';
import { backendsByVersion, percentByVersion, serviceSpec, waitFor, workflowHarness } from '../helpers/workflow-harness';

let env: TestWorkflowEnvironment;
const { withWorker, deploy, deployOrNot, rolloutResult } = workflowHarness(() => env);

timeSkippingServerPerTest((created) => (env = created));

const canary = (name: string, replicas: number, rollout: Partial<RolloutSpec>) =>
  serviceSpec({ name, replicas, rollout: { strategy: 'canary', max_surge: 1, max_unavailable: 0, timeout: '120m', ...rollout } });
const v2 = <T extends { env: ServiceSpec['env'] }>(s: T): T => ({ ...s, env: { MODEL_VERSION: 'v2' } });

const rolloutOf = (id: string) => env.client.workflow.getHandle(id);
const statusOf = (id: string): Promise<RolloutStatus> => rolloutOf(id).query(rolloutStatusQuery);
const control = (id: string, req: ControlRequest) => rolloutOf(id).executeUpdate(controlUpdate, { args: [req] });
/** The refusal message of a control update, or undefined when it was accepted. */
async function refusal(id: string, req: ControlRequest): Promise<string | undefined> {
  try {
    await control(id, req);
    return undefined;
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) return String(err.cause?.message);
    throw err;
  }
}

describe('canary steps', () => {
  test('weight 25 → timed pause (skipped time) → weight 50 → indefinite pause holds → advance → 100%', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = canary('steps', 4, { steps: [{ weight: 25 }, { pause: { duration: '10m' } }, { weight: 50 }, { pause: {} }] });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, v2(v1));
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).stepIndex === 1);
      const atPause = await statusOf(d2.rolloutWorkflowId);
      expect(atPause.canaryPercent).toBe(25);
      expect(atPause.replicas.filter((r) => r.version === 2)).toHaveLength(1);
      // The timed pause holds for its 10 minutes…
      await env.sleep('9 minutes');
      expect((await statusOf(d2.rolloutWorkflowId)).stepIndex).toBe(1);
      await env.sleep('2 minutes');
      // …then the rollout goes to 50% and holds at the empty pause, however long.
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).stepIndex === 3);
      await env.sleep('30 minutes');
      const held = await statusOf(d2.rolloutWorkflowId);
      expect(held).toMatchObject({ phase: 'rolling_out', mode: 'steps', canaryPercent: 50, stepIndex: 3 });
      expect(held.replicas.filter((r) => r.version === 2)).toHaveLength(2);
      expect(held.replicas.filter((r) => r.version === 1)).toHaveLength(2);
      await env.client.workflow.getHandle(serviceWorkflowId('steps')).signal(advanceSignal);
      const result = await rolloutResult(d2.rolloutWorkflowId);
      expect(result.outcome).toBe('succeeded');
      // Traffic went 25% → 50% → 100% and never beyond what v2's ready replicas can carry (25% each).
      const v2Shares = world.trafficCalls.map((c) => percentByVersion(c)[2] ?? 0);
      expect(v2Shares).toEqual(expect.arrayContaining([25, 50, 100]));
      expect(world.peakRunning.get('steps')).toBeLessThanOrEqual(5);
    });
  });

  test('pause steps do not count against the timeout: a 20-minute pause and an hour at {pause: {}} under a 10-minute timeout', async () => {
    await withWorker({}, async (_world, tq) => {
      const v1 = canary('patient', 2, { timeout: '10m', steps: [{ weight: 50 }, { pause: { duration: '20m' } }, { pause: {} }] });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, v2(v1));
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).stepIndex === 1);
      await env.sleep('25 minutes');
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).stepIndex === 2);
      await env.sleep('1 hour');
      expect(await statusOf(d2.rolloutWorkflowId)).toMatchObject({ phase: 'rolling_out', stepIndex: 2, canaryPercent: 50 });
      // resume at an indefinite pause step goes on (as advance does)
      await control(d2.rolloutWorkflowId, { action: 'resume' });
      expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('succeeded');
    });
  });

  test('max_surge_percent 20 of 10 replicas: capacity moves 2 replicas at a time and never exceeds 12', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = canary('tight', 10, { max_surge_percent: 20 });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      world.peakRunning.clear();
      const before = world.trafficCalls.length;
      const result = await rolloutResult((await deploy(tq, v2(v1))).rolloutWorkflowId);
      expect(result.outcome).toBe('succeeded');
      expect(world.peakRunning.get('tight')).toBe(12);
      // Traffic follows READY capacity and only goes up, from 0% to 100%. How many replicas
      // became READY in one workflow task is up to the machine (one: +10%, both: +20%), so the
      // stages are not fixed: the invariants are.
      const calls = world.trafficCalls.slice(before);
      const v2Shares = calls.map((c) => percentByVersion(c)[2] ?? 0);
      expect(v2Shares[0]).toBe(0);
      expect(v2Shares[v2Shares.length - 1]).toBe(100);
      v2Shares.forEach((share, i) => {
        expect(share % 10).toBe(0); // whole replicas of 10
        if (i > 0) {
          expect(share).toBeGreaterThanOrEqual(v2Shares[i - 1]); // never back
          expect(share - v2Shares[i - 1]).toBeLessThanOrEqual(20); // at most the 2 replicas of one increment
        }
      });
      // Every split is within each version's ready capacity (a traffic call lists READY replicas only).
      for (const call of calls) {
        const share = percentByVersion(call);
        const ready = backendsByVersion(call);
        for (const v of [1, 2]) expect(share[v] ?? 0).toBeLessThanOrEqual((ready[v] ?? 0) * 10 + 1e-9);
      }
    });
  });
});

describe('manual mode', () => {
  test('deploy --canary-percent 30 holds for hours without timing out; set 150 is refused; set 60 moves; promote finishes', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = serviceSpec({ name: 'manual', replicas: 4 });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, v2(v1), { canaryPercent: 30 });
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).canaryPercent === 30);
      await env.sleep('3 hours'); // past the 120m timeout: manual mode does not roll back
      const held = await statusOf(d2.rolloutWorkflowId);
      expect(held).toMatchObject({ phase: 'manual', mode: 'manual', canaryPercent: 30, targetPercent: 30, deadline: null });
      expect(held.replicas.filter((r) => r.version === 2)).toHaveLength(2); // ⌈30% of 4⌉

      expect(await refusal(d2.rolloutWorkflowId, { action: 'setCanaryPercent', percent: 150 })).toMatch(/percent from 0 to 100, got 150/);
      expect((await statusOf(d2.rolloutWorkflowId)).targetPercent).toBe(30);

      const answer = await control(d2.rolloutWorkflowId, { action: 'setCanaryPercent', percent: 60 });
      expect(answer).toMatchObject({ phase: 'manual', targetPercent: 60 });
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).canaryPercent === 60);
      const lastCall = world.trafficCalls[world.trafficCalls.length - 1];
      expect(percentByVersion(lastCall)).toEqual({ 1: 40, 2: 60 });

      await env.client.workflow.getHandle(serviceWorkflowId('manual')).signal(promoteSignal);
      expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('succeeded');
    });
  });

  test('the control update through the service workflow answers the rollout\'s state, and passes on its refusals', async () => {
    await withWorker({}, async (_world, tq) => {
      const v1 = canary('fwd', 2, { steps: [{ weight: 50 }, { pause: {} }] });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const service = env.client.workflow.getHandle(serviceWorkflowId('fwd'));
      const idle = await service.executeUpdate(controlUpdate, { args: [{ action: 'pause' }] }).catch((e: unknown) => e);
      expect(String((idle as WorkflowUpdateFailedError).cause?.message)).toMatch(/fwd has no rollout in progress \(serving v1\)/);
      const d2 = await deploy(tq, v2(v1));
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).stepIndex === 1);
      const held = await service.executeUpdate(controlUpdate, { args: [{ action: 'setCanaryPercent', percent: 25 }] });
      expect(held).toMatchObject({ workflowId: d2.rolloutWorkflowId, phase: 'manual', targetPercent: 25 });
      const refused = await service.executeUpdate(controlUpdate, { args: [{ action: 'pause' }] }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(/manual mode already holds the canary at 25%/);
      await service.executeUpdate(controlUpdate, { args: [{ action: 'promote' }] });
      expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('succeeded');
    });
  });

  test('a signal with a bad payload is recorded and ignored; the rollout goes on', async () => {
    await withWorker({}, async (_world, tq) => {
      const v1 = canary('badsig', 2, { steps: [{ weight: 50 }, { pause: {} }] });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, v2(v1));
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).stepIndex === 1);
      const service = env.client.workflow.getHandle(serviceWorkflowId('badsig'));
      await service.signal(setCanaryPercentSignal, 'lots');
      await service.signal(setCanaryPercentSignal, { percent: 150 });
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).refused.length === 2);
      const status = await statusOf(d2.rolloutWorkflowId);
      expect(status.refused[0]).toMatch(/setCanaryPercent: needs a percent from 0 to 100, got "lots"/);
      expect(status.refused[1]).toMatch(/got 150/);
      expect(status).toMatchObject({ phase: 'rolling_out', canaryPercent: 50 });
      await service.signal(setCanaryPercentSignal, 20); // a good one, through the service workflow
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).canaryPercent === 20);
      await service.signal(promoteSignal);
      expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('succeeded');
    });
  });
});

describe('every control message in every phase', () => {
  const request = (action: ControlAction): ControlRequest => (action === 'setCanaryPercent' ? { action, percent: 40 } : { action });
  type Phase = 'rolling_out' | 'paused' | 'manual';
  /** What each message does in each phase: the phase it leads to, or the refusal it gets. */
  const table: [Phase, ControlAction, { phase: string } | { refused: RegExp }][] = [
    ['rolling_out', 'pause', { phase: 'paused' }],
    ['rolling_out', 'resume', { phase: 'succeeded' }], // held at {pause: {}}: resume goes on
    ['rolling_out', 'advance', { phase: 'succeeded' }],
    ['rolling_out', 'setCanaryPercent', { phase: 'manual' }],
    ['rolling_out', 'promote', { phase: 'succeeded' }],
    ['rolling_out', 'rollback', { phase: 'rolled_back' }],
    ['paused', 'pause', { refused: /already paused/ }],
    ['paused', 'resume', { phase: 'rolling_out' }],
    ['paused', 'advance', { phase: 'succeeded' }],
    ['paused', 'setCanaryPercent', { phase: 'manual' }],
    ['paused', 'promote', { phase: 'succeeded' }],
    ['paused', 'rollback', { phase: 'rolled_back' }],
    ['manual', 'pause', { refused: /manual mode already holds the canary at 10%/ }],
    ['manual', 'resume', { phase: 'rolling_out' }],
    ['manual', 'advance', { phase: 'rolling_out' }],
    ['manual', 'setCanaryPercent', { phase: 'manual' }],
    ['manual', 'promote', { phase: 'succeeded' }],
    ['manual', 'rollback', { phase: 'rolled_back' }],
  ];
  let serviceSeq = 0;

  test.each(table)('%s + %s', async (phase, action, expected) => {
    await withWorker({}, async (_world, tq) => {
      const name = `m${++serviceSeq}`;
      // Steps: 50%, then hold until told (so "rolling_out" stays put at step 2 of 3).
      const v1 = canary(name, 2, { steps: [{ weight: 50 }, { pause: {} }] });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const id = (await deploy(tq, v2(v1))).rolloutWorkflowId;
      await waitFor(async () => (await statusOf(id)).stepIndex === 1);
      if (phase === 'paused') await control(id, { action: 'pause' });
      if (phase === 'manual') {
        await control(id, { action: 'setCanaryPercent', percent: 10 });
        await waitFor(async () => (await statusOf(id)).canaryPercent === 10);
      }
      const before = await statusOf(id);
      expect(before.phase).toBe(phase);

      if ('refused' in expected) {
        expect(await refusal(id, request(action))).toMatch(expected.refused);
        const after = await statusOf(id);
        expect([after.phase, after.targetPercent, after.stepIndex, after.canaryPercent]).toEqual([before.phase, before.targetPercent, before.stepIndex, before.canaryPercent]);
        await control(id, { action: 'rollback' });
        await rolloutResult(id);
        return;
      }
      const answer = await control(id, request(action));
      if (expected.phase === 'succeeded' || expected.phase === 'rolled_back') {
        expect((await rolloutResult(id)).outcome).toBe(expected.phase);
        return;
      }
      expect(answer.phase).toBe(expected.phase);
      if (action === 'setCanaryPercent') {
        expect(answer).toMatchObject({ mode: 'manual', targetPercent: 40, deadline: null });
        await waitFor(async () => (await statusOf(id)).canaryPercent === 40);
      }
      if (phase === 'manual' && expected.phase === 'rolling_out') {
        // Back to the steps: the first weight above the held 10% is 50%, then the indefinite pause.
        expect(answer).toMatchObject({ mode: 'steps', stepIndex: 0, targetPercent: 50 });
        await waitFor(async () => (await statusOf(id)).stepIndex === 1);
      }
      await control(id, { action: 'rollback' });
      expect((await rolloutResult(id)).outcome).toBe('rolled_back');
    });
  });

  test('rolling_back refuses everything; advance while rolling back says why', async () => {
    await withWorker({}, async (world, tq) => {
      const actions: ControlAction[] = ['pause', 'resume', 'advance', 'setCanaryPercent', 'promote', 'rollback'];
      const v1 = canary('backing', 2, { steps: [{ weight: 50 }, { pause: {} }] });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, v2(v1));
      const id = d2.rolloutWorkflowId;
      await waitFor(async () => (await statusOf(id)).stepIndex === 1);
      // v1 replicas launched from now on never become ready, so the rollback stays in progress.
      world.readiness.set(1, { kind: 'never' });
      await control(id, { action: 'rollback' });
      await waitFor(async () => (await statusOf(id)).replicas.some((r) => r.version === 1 && (r.status === 'PROVISIONING' || r.status === 'STARTING')));
      for (const action of actions) {
        expect(await refusal(id, request(action))).toMatch(/rolling back \(manual rollback\); it can only finish rolling back/);
      }
      // Traffic stayed on what is ready: v2 keeps its share until v1 is back.
      const status = await statusOf(id);
      expect(status.phase).toBe('rolling_back');
      expect(status.canaryPercent).toBe(50);
      world.readiness.set(1, { kind: 'ready' });
      // The stuck replica is retried (10-minute retry delay in the fake); the rollback then completes.
      expect((await rolloutResult(id)).outcome).toBe('rolled_back');
    });
  });

  test('finished: the service workflow has no active rollout and ignores signals', async () => {
    await withWorker({}, async (_world, tq) => {
      const v1 = canary('done', 2, {});
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, v2(v1));
      await rolloutResult(d2.rolloutWorkflowId);
      const service = env.client.workflow.getHandle(serviceWorkflowId('done'));
      for (const signal of [pauseSignal, advanceSignal, promoteSignal]) await service.signal(signal);
      await service.signal(setCanaryPercentSignal, 10);
      const status = await service.query(serviceStatusQuery);
      expect(status.activeRollout).toBeUndefined();
      expect(status.version).toBe(2);
      await expect(control(d2.rolloutWorkflowId, { action: 'pause' })).rejects.toThrow();
    });
  });

  test('set-canary takes a rolling rollout into manual mode; promote finishes it', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = serviceSpec({ name: 'roll2manual', replicas: 4 });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      // v2 replicas stay loading until the update is in, so it certainly meets a rollout that
      // has only launched (however slow the machine is).
      const release = world.hold(2);
      const d2 = await deploy(tq, v2(v1));
      const answer = await control(d2.rolloutWorkflowId, { action: 'setCanaryPercent', percent: 25 });
      expect(answer).toMatchObject({ phase: 'manual', mode: 'manual', targetPercent: 25 });
      release();
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).canaryPercent === 25);
      const held = await statusOf(d2.rolloutWorkflowId);
      expect(held.replicas.filter((r) => r.version === 2 && r.status === 'READY')).toHaveLength(1);
      expect(percentByVersion(world.trafficCalls[world.trafficCalls.length - 1])).toEqual({ 1: 75, 2: 25 });
      await control(d2.rolloutWorkflowId, { action: 'promote' });
      expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('succeeded');
    });
  });

  test('a replica-led (rolling) rollout has no steps to advance; blue-green takes no percent', async () => {
    await withWorker({ 2: { kind: 'never' } }, async (_world, tq) => {
      const rolling = serviceSpec({ name: 'plain' });
      await rolloutResult((await deploy(tq, rolling)).rolloutWorkflowId);
      const d2 = await deploy(tq, v2(rolling));
      expect(await refusal(d2.rolloutWorkflowId, { action: 'advance' })).toMatch(/a rolling rollout has no steps/);
      await control(d2.rolloutWorkflowId, { action: 'rollback' });
      await rolloutResult(d2.rolloutWorkflowId);

      const bg = serviceSpec({ name: 'bg', rollout: { strategy: 'blue_green', max_surge: 1, max_unavailable: 0, timeout: '120m' } });
      await rolloutResult((await deploy(tq, bg)).rolloutWorkflowId);
      const b2 = await deploy(tq, v2(bg));
      expect(await refusal(b2.rolloutWorkflowId, { action: 'setCanaryPercent', percent: 10 })).toMatch(/blue_green rollout never splits traffic/);
      await control(b2.rolloutWorkflowId, { action: 'rollback' });
      await rolloutResult(b2.rolloutWorkflowId);
    });
  });
});

describe('analysis', () => {
  /** Cumulative counters: `reads[i]` is what the router says at the i-th reading. */
  const snapshot = (v1: [number, number], v2: [number, number]): StatsSnapshot => ({
    '1': { requests: v1[0], errors5xx: v1[1], ttfbBuckets: [] },
    '2': { requests: v2[0], errors5xx: v2[1], ttfbBuckets: [] },
  });
  const analysed = (name: string, failureLimit: number) =>
    canary(name, 2, {
      steps: [{ weight: 50 }, { pause: { duration: '5m' } }],
      analysis: { interval: '1m', max_error_rate: 0.05, min_requests: 10, failure_limit: failureLimit },
    });

  test('a canary answering 5xx fails more checks than failure_limit: automatic rollback', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = analysed('flaky', 1);
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      world.stats.set('flaky', [snapshot([0, 0], [0, 0]), snapshot([100, 0], [100, 20]), snapshot([200, 0], [200, 40])]);
      const d2 = await deploy(tq, v2(v1));
      const result = await rolloutResult(d2.rolloutWorkflowId);
      expect(result.outcome).toBe('rolled_back');
      expect(result.reason).toMatch(/analysis failed: canary error rate 20.0% > max 5%/);
      expect(result.cause).toEqual({ kind: 'analysis' });
      expect(result.replicas.every((r) => r.version === 1)).toBe(true);
    });
  });

  test('too little traffic is inconclusive: the rollout holds past its timed pause, then moves on once a check passes', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = analysed('quiet', 0);
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const reads = [snapshot([0, 0], [0, 0])];
      for (let i = 1; i <= 10; i++) reads.push(snapshot([i, 0], [i, 0])); // 1 request a minute: < 10
      world.stats.set('quiet', reads);
      const d2 = await deploy(tq, v2(v1));
      await waitFor(async () => (await statusOf(d2.rolloutWorkflowId)).canaryPercent === 50);
      await env.sleep('8 minutes');
      const holding = await statusOf(d2.rolloutWorkflowId);
      expect(holding.phase).toBe('rolling_out');
      expect(holding.stepIndex).toBe(0); // not past the 50% step: no check has passed
      expect(holding.analysis).toMatchObject({ passed: 0, failed: 0 });
      expect(holding.analysis?.inconclusive).toBeGreaterThanOrEqual(5);
      expect(holding.analysis?.last?.reasons[0]).toMatch(/too little traffic to judge/);
      // Healthy traffic from now on: checks pass, the pause runs, the rollout finishes.
      const healthy = [...reads];
      for (let i = 1; i <= 30; i++) healthy.push(snapshot([10 + 100 * i, 0], [10 + 100 * i, 0]));
      world.stats.set('quiet', healthy);
      expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('succeeded');
    });
  });

  test('a timed pause before the canary has traffic ends on time: there is nothing to analyse yet', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = canary('warmup', 2, {
        steps: [{ pause: { duration: '10m' } }, { weight: 50 }, { weight: 100 }],
        analysis: { interval: '1m', max_error_rate: 0.05, min_requests: 10, failure_limit: 0 },
      });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      world.stats.set('warmup', Array.from({ length: 60 }, (_, i) => snapshot([100 * i, 0], [100 * i, 0])));
      const d2 = await deploy(tq, v2(v1));
      const result = await rolloutResult(d2.rolloutWorkflowId);
      expect(result.outcome).toBe('succeeded');
      expect(result.reason).toBeUndefined();
    });
  });
});

describe('change detection', () => {
  test('a replica-count change is applied in place: nothing restarted, version bumped; an identical spec changes nothing', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = serviceSpec({ name: 'scale' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, { ...v1, replicas: 3 });
      expect(d2).toMatchObject({ version: 2, mode: 'in_place', changes: ['replicas'] });
      expect(d2.reason).toMatch(/only replicas changed: applied in place, nothing restarted/);
      const r2 = await rolloutResult(d2.rolloutWorkflowId);
      expect(r2.outcome).toBe('succeeded');
      expect(world.terminated).toEqual([]);
      expect(r2.replicas.map((r) => `${r.id}:${r.version}:${r.status}`)).toEqual(['scale-v1-r1:2:READY', 'scale-v1-r2:2:READY', 'scale-v1-r3:2:READY']);
      expect(percentByVersion(world.trafficCalls[world.trafficCalls.length - 1])).toEqual({ 2: 100 });

      const d3 = await deploy(tq, { ...v1, replicas: 1 });
      expect(d3.mode).toBe('in_place');
      await rolloutResult(d3.rolloutWorkflowId);
      expect(world.terminated).toHaveLength(2);
      expect(world.launched).toHaveLength(3);

      const same = await deployOrNot(tq, { ...v1, replicas: 1 });
      expect(same).toMatchObject({ version: 3, mode: 'unchanged' });
      expect(same.rolloutWorkflowId).toBeUndefined();
      const forced = await deploy(tq, { ...v1, replicas: 1 }, { force: true });
      expect(forced).toMatchObject({ version: 4, mode: 'rollout' });
      await rolloutResult(forced.rolloutWorkflowId);
      expect(world.launched).toHaveLength(4);
    });
  });

  test('--canary-percent is refused for a first deploy and for an in-place change', async () => {
    await withWorker({}, async (_world, tq) => {
      const v1 = serviceSpec({ name: 'refuse' });
      await expect(deployOrNot(tq, v1, { canaryPercent: 10 })).rejects.toThrow(WorkflowUpdateFailedError);
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const err = await deployOrNot(tq, { ...v1, replicas: 3 }, { canaryPercent: 10 }).catch((e: unknown) => e);
      expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(/nothing to canary: only replicas changed/);
      const status = await env.client.workflow.getHandle(serviceWorkflowId('refuse')).query(serviceStatusQuery);
      expect(status.version).toBe(1);
    });
  });
});
