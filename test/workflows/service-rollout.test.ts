/**
 * Orchestration tests of the service and rollout workflows on the real time-skipping test
 * server; activities are in-memory fakes (test/helpers/fake-activities.ts).
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { pauseSignal, resumeSignal, rollbackSignal, rolloutStatusQuery, serviceStatusQuery } from '../../src/workflows/messages';
import { serviceWorkflowId } from '../../src/workflows/types';
import { timeSkippingServerPerTest } from '../helpers/temporal-env';
import { backendsByVersion, serviceSpec, waitFor, workflowHarness } from '../helpers/workflow-harness';

let env: TestWorkflowEnvironment;
const { withWorker, deploy, rolloutResult } = workflowHarness(() => env);
const spec = serviceSpec;

timeSkippingServerPerTest((created) => (env = created));

describe('service workflow', () => {
  test('first deploy brings up v1 with 2 READY replicas and a traffic split', async () => {
    await withWorker({}, async (world, tq) => {
      const s = spec({ name: 'first' });
      const d = await deploy(tq, s);
      expect(d).toMatchObject({ version: 1, rolloutWorkflowId: 'rollout-first-v1', mode: 'rollout', reason: 'first deploy' });
      const result = await rolloutResult(d.rolloutWorkflowId);
      expect(result.outcome).toBe('succeeded');
      const status = await env.client.workflow.getHandle(serviceWorkflowId('first')).query(serviceStatusQuery);
      expect(status.version).toBe(1);
      expect(status.replicas.map((r) => [r.version, r.status])).toEqual([
        [1, 'READY'],
        [1, 'READY'],
      ]);
      expect(status.traffic).toEqual({ '1': 100 });
      expect(status.endpoint).toBe('http://router.test/first');
      expect(world.launched).toHaveLength(2);
    });
  });

  test('v1 → v2 rolling update: never below 2 serving replicas, old ones terminated after, v2 serves all', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = spec({ name: 'roll' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
      expect(d2.version).toBe(2);
      const result = await rolloutResult(d2.rolloutWorkflowId);
      expect(result.outcome).toBe('succeeded');
      expect(result.servingVersion).toBe(2);
      expect(result.replicas.every((r) => r.version === 2 && r.status === 'READY')).toBe(true);
      // Every traffic call after v1 came up keeps at least 2 ready backends (max_unavailable 0).
      const afterV1 = world.trafficCalls.slice(world.trafficCalls.findIndex((c) => c.length === 2));
      for (const call of afterV1) expect(call.filter((b) => b.weight > 0).length).toBeGreaterThanOrEqual(2);
      // Traffic moved through a mixed split, and ends on v2 only.
      expect(afterV1.some((c) => Object.keys(backendsByVersion(c)).length === 2)).toBe(true);
      expect(backendsByVersion(world.trafficCalls[world.trafficCalls.length - 1])).toEqual({ 2: 2 });
      expect(world.terminated.sort()).toEqual(['roll-v1-r1', 'roll-v1-r2']);
      expect(world.drained.sort()).toEqual(['roll-v1-r1', 'roll-v1-r2']);
      expect([...world.running].sort()).toEqual(['roll-v2-r3', 'roll-v2-r4']);
    });
  });

  test("a rolling rollout's traffic changes ride on its steps: no traffic call of their own, none drained while routed, ≤ 20 + 12 events a replica", async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = spec({ name: 'carry', replicas: 4, rollout: { strategy: 'rolling', max_surge: 2, max_unavailable: 0, timeout: '120m' } });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
      expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('succeeded');
      expect(backendsByVersion(world.trafficCalls[world.trafficCalls.length - 1])).toEqual({ 2: 4 });
      expect(world.drained.sort()).toEqual(['carry-v1-r1', 'carry-v1-r2', 'carry-v1-r3', 'carry-v1-r4']);
      expect(world.drainedWhileRouted).toEqual([]);
      const { events } = await env.client.workflow.getHandle(d2.rolloutWorkflowId).fetchHistory();
      const scheduled = (events ?? []).flatMap((e) => (e.activityTaskScheduledEventAttributes?.activityType?.name ? [e.activityTaskScheduledEventAttributes.activityType.name] : []));
      expect(scheduled).not.toContain('setTraffic');
      expect(scheduled.filter((n) => n === 'startReplica')).toHaveLength(4);
      expect((events ?? []).length).toBeLessThanOrEqual(20 + 12 * 4);
    });
  });

  test('a deploy sent around the CLI with an invalid spec is refused with its field paths; no version is taken', async () => {
    await withWorker({}, async (_world, tq) => {
      const v1 = spec({ name: 'raw' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const bad = { ...v1, replicas: 0, bogus: 1, rollout: { ...v1.rollout, strategy: 'sideways' } } as unknown as typeof v1;
      const err = await deploy(tq, bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      const message = String((err as WorkflowUpdateFailedError).cause?.message);
      expect(message).toMatch(/^invalid spec: /);
      expect(message).toMatch(/replicas: /);
      expect(message).toMatch(/bogus: unknown field/);
      expect(message).toMatch(/rollout\.strategy: /);
      const status = await env.client.workflow.getHandle(serviceWorkflowId('raw')).query(serviceStatusQuery);
      expect({ version: status.version, nextVersion: status.nextVersion, activeRollout: status.activeRollout }).toEqual({ version: 1, nextVersion: 2, activeRollout: undefined });
    });
  });

  test('a deploy while a rollout runs is refused with a clear message', async () => {
    await withWorker({ 2: { kind: 'never' } }, async (_world, tq) => {
      const v1 = spec({ name: 'busy' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
      const err = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v3' } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(/rollout of busy v2 is in progress/);
      await env.client.workflow.getHandle(serviceWorkflowId('busy')).signal(rollbackSignal, { reason: 'test over' });
      expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('rolled_back');
    });
  });
});

describe('automatic rollback', () => {
  test('the 120-minute timeout fires at its deadline (time-skipped): traffic back on v1, v2 replicas terminated', async () => {
    await withWorker({ 2: { kind: 'never' } }, async (world, tq) => {
      const v1 = spec({ name: 'slow', readiness_probe: { path: '/health', initial_delay_seconds: 6 * 3600, period_seconds: 5, timeout_seconds: 5, failure_threshold: 3 } });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
      const started = await env.currentTimeMs();
      const result = await rolloutResult(d2.rolloutWorkflowId);
      const skippedMinutes = ((await env.currentTimeMs()) - started) / 60_000;
      expect(result.outcome).toBe('rolled_back');
      expect(result.reason).toBe('timed out after 120m');
      expect(result.cause).toEqual({ kind: 'timeout' });
      // `started` is read after the deploy answered, a moment after the rollout (and its clock) began.
      expect(skippedMinutes).toBeGreaterThanOrEqual(119.9);
      expect(skippedMinutes).toBeLessThan(125);
      expect(result.servingVersion).toBe(1);
      expect(result.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['1:READY', '1:READY']);
      expect(backendsByVersion(world.trafficCalls[world.trafficCalls.length - 1])).toEqual({ 1: 2 });
      expect([...world.running].sort()).toEqual(['slow-v1-r1', 'slow-v1-r2']);
      const status = await env.client.workflow.getHandle(serviceWorkflowId('slow')).query(serviceStatusQuery);
      expect(status.version).toBe(1);
      expect(status.lastRollout).toMatchObject({ version: 2, outcome: 'rolled_back' });
    });
  });

  test('a v2 replica that never becomes ready rolls back; v1 keeps 2 ready replicas throughout', async () => {
    await withWorker({ 2: { kind: 'fail', message: 'not ready after 1200s: last probe 503' } }, async (world, tq) => {
      const v1 = spec({ name: 'bad' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const callsBefore = world.trafficCalls.length;
      const result = await rolloutResult((await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } })).rolloutWorkflowId);
      expect(result.outcome).toBe('rolled_back');
      expect(result.reason).toMatch(/replica bad-v2-r3 failed: not ready after 1200s/);
      expect(result.cause).toEqual({ kind: 'readiness', replicaId: 'bad-v2-r3' });
      for (const call of world.trafficCalls.slice(callsBefore)) expect(backendsByVersion(call)[1]).toBe(2);
      expect(world.terminated).toEqual(['bad-v2-r3']);
      expect([...world.running].sort()).toEqual(['bad-v1-r1', 'bad-v1-r2']);
    });
  });

  test('a v2 replica whose process dies after it became ready rolls the rollout back', async () => {
    // v2 replicas take 2 s to be ready: the first dies once watched, well before the second is up.
    await withWorker({ 2: { kind: 'dies-after-ready', message: 'replica stopped (exit code 137)', afterMs: 2000 } }, async (world, tq) => {
      const v1 = spec({ name: 'dies' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const result = await rolloutResult((await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } })).rolloutWorkflowId);
      expect(result.outcome).toBe('rolled_back');
      expect(result.reason).toMatch(/replica dies-v2-r3 failed: .*replica stopped \(exit code 137\)/);
      expect(result.cause).toEqual({ kind: 'replica_lost', replicaId: 'dies-v2-r3' });
      expect(result.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['1:READY', '1:READY']);
      expect(backendsByVersion(world.trafficCalls[world.trafficCalls.length - 1])).toEqual({ 1: 2 });
      expect([...world.running].filter((id) => id.includes('-v2-'))).toEqual([]);
    });
  });

  test('GPUs the provider can never give fail the rollout at once, naming the shortfall', async () => {
    await withWorker({}, async (world, tq) => {
      world.totalGpus = 0;
      const started = await env.currentTimeMs();
      const result = await rolloutResult((await deploy(tq, spec({ name: 'nogpu', resources: { provider: 'local', accelerators: 'L4:1' } }))).rolloutWorkflowId);
      expect(result.outcome).toBe('failed');
      expect(result.reason).toBe('not enough GPUs: each replica needs 1 GPU(s); the provider has 0 in all');
      expect(world.launched).toEqual([]);
      expect(((await env.currentTimeMs()) - started) / 60_000).toBeLessThan(1); // not the 120-minute timeout

      // A service that serves: a change it cannot fit rolls back at once, v1 untouched.
      world.totalGpus = 4;
      const gpuSpec = (replicas: number) => spec({ name: 'fits', replicas, resources: { provider: 'local', accelerators: 'A100:2' } });
      await rolloutResult((await deploy(tq, gpuSpec(2))).rolloutWorkflowId);
      const r2 = await rolloutResult((await deploy(tq, { ...gpuSpec(3), env: { MODEL_VERSION: 'v2' } })).rolloutWorkflowId);
      expect(r2.outcome).toBe('rolled_back');
      expect(r2.reason).toBe('not enough GPUs: 3 replica(s) × 2 GPU(s) = 6 GPU(s); the provider has 4 in all');
      expect(r2.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['1:READY', '1:READY']);
      expect(world.launched.filter((id) => id.startsWith('fits-v2-'))).toEqual([]);
    });
  });

  test('a failed first deploy removes everything it started', async () => {
    await withWorker({ 1: { kind: 'fail', message: 'process exited with code 1' } }, async (world, tq) => {
      const result = await rolloutResult((await deploy(tq, spec({ name: 'nothing' }))).rolloutWorkflowId);
      expect(result.outcome).toBe('failed');
      expect(world.running.size).toBe(0);
      const status = await env.client.workflow.getHandle(serviceWorkflowId('nothing')).query(serviceStatusQuery);
      expect(status.version).toBe(0);
    });
  });
});

describe('signals through the service workflow', () => {
  test('pause holds the split, resume finishes the rollout', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = spec({ name: 'pausy' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const service = env.client.workflow.getHandle(serviceWorkflowId('pausy'));
      // v2 stays loading until the pause is in: the rollout cannot finish before the signal lands.
      const release = world.hold(2);
      const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
      await service.signal(pauseSignal);
      const rollout = env.client.workflow.getHandle(d2.rolloutWorkflowId);
      await waitFor(async () => (await rollout.query(rolloutStatusQuery)).phase === 'paused');
      // Loading finishes while paused (time is skipped only once no activity runs).
      release();
      // While paused for an hour of (skipped) time, the rollout neither finishes nor times out.
      await env.sleep('1 hour');
      const paused = await rollout.query(rolloutStatusQuery);
      expect(paused.phase).toBe('paused');
      expect(world.terminated).toEqual([]);
      await service.signal(resumeSignal);
      const result = await rolloutResult(d2.rolloutWorkflowId);
      expect(result.outcome).toBe('succeeded');
    });
  });

  test('a rollback does not wait for a launch that keeps failing (no capacity): it cancels it', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = spec({ name: 'stockout' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      world.launchFailures.set(2, { type: 'CapacityError', message: 'no GPU free' });
      const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
      const rollout = env.client.workflow.getHandle(d2.rolloutWorkflowId);
      await waitFor(async () => (await rollout.query(rolloutStatusQuery)).replicas.some((r) => r.version === 2 && r.status === 'PROVISIONING'));
      const started = await env.currentTimeMs();
      await env.client.workflow.getHandle(serviceWorkflowId('stockout')).signal(rollbackSignal, { reason: 'stockout' });
      const result = await rolloutResult(d2.rolloutWorkflowId);
      expect(result.outcome).toBe('rolled_back');
      expect(result.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['1:READY', '1:READY']);
      expect(((await env.currentTimeMs()) - started) / 60_000).toBeLessThan(2); // not the launch's retries until its timeout
      expect([...world.running].sort()).toEqual(['stockout-v1-r1', 'stockout-v1-r2']);
    });
  });

  test('rollback mid-rollout returns all traffic to v1 and removes v2', async () => {
    await withWorker({ 2: { kind: 'never' } }, async (world, tq) => {
      const v1 = spec({ name: 'manual' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
      const rollout = env.client.workflow.getHandle(d2.rolloutWorkflowId);
      await waitFor(async () => (await rollout.query(rolloutStatusQuery)).replicas.some((r) => r.version === 2 && (r.status === 'PROVISIONING' || r.status === 'STARTING')));
      await env.client.workflow.getHandle(serviceWorkflowId('manual')).signal(rollbackSignal, { reason: 'bad latency' });
      const result = await rolloutResult(d2.rolloutWorkflowId);
      expect(result.outcome).toBe('rolled_back');
      expect(result.reason).toBe('manual rollback: bad latency');
      expect(result.cause).toEqual({ kind: 'person', personReason: 'bad latency' });
      expect([...world.running].sort()).toEqual(['manual-v1-r1', 'manual-v1-r2']);
    });
  });
});
