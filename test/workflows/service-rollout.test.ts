/**
 * Orchestration tests of the service and rollout workflows on the real time-skipping test
 * server; activities are in-memory fakes (test/helpers/fake-activities.ts).
 */
import { WithStartWorkflowOperation, WorkflowUpdateFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { ServiceSpec } from '../../src/spec/types';
import { deployUpdate, pauseSignal, resumeSignal, rollbackSignal, rolloutStatusQuery, serviceStatusQuery } from '../../src/workflows/messages';
import type { DeployInput, RolloutResult } from '../../src/workflows/types';
import { serviceWorkflowId } from '../../src/workflows/types';
import { serviceSettled } from '../../src/cli/commands/deploy';
import { fakeWorld, type FakeWorld, type Readiness } from '../helpers/fake-activities';
import { createTimeSkippingEnv, workflowBundle } from '../helpers/temporal-env';

let env: TestWorkflowEnvironment;
let taskQueueSeq = 0;

beforeAll(async () => {
  env = await createTimeSkippingEnv();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

function spec(overrides: Partial<ServiceSpec> & { version?: string } = {}): ServiceSpec {
  const { version = 'v1', ...rest } = overrides;
  return {
    name: 'llm',
    replicas: 2,
    run: 'serve',
    env: { MODEL_VERSION: version },
    resources: { provider: 'local' },
    readiness_probe: { path: '/health', initial_delay_seconds: 1200, period_seconds: 5, timeout_seconds: 5, failure_threshold: 3 },
    rollout: { strategy: 'rolling', max_surge: 1, max_unavailable: 0, timeout: '120m' },
    ...rest,
  };
}

/** Runs `fn` with a worker over fake activities on a fresh task queue, service name unique per test. */
async function withWorker<T>(readiness: Record<number, Readiness>, fn: (world: FakeWorld, taskQueue: string) => Promise<T>): Promise<T> {
  const world = fakeWorld(readiness);
  const taskQueue = `test-${++taskQueueSeq}`;
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowBundle: await workflowBundle(),
    activities: world.activities,
  });
  return worker.runUntil(fn(world, taskQueue));
}

/** Deploys a spec that starts a rollout (its workflow id is then always there). */
async function deploy(taskQueue: string, s: ServiceSpec, options: Omit<DeployInput, 'spec'> = {}) {
  const result = await deployOrNot(taskQueue, s, options);
  if (!result.rolloutWorkflowId) throw new Error(`no rollout started: ${result.reason}`);
  return { ...result, rolloutWorkflowId: result.rolloutWorkflowId };
}

async function deployOrNot(taskQueue: string, s: ServiceSpec, options: Omit<DeployInput, 'spec'> = {}) {
  return env.client.workflow.executeUpdateWithStart(deployUpdate, {
    args: [{ spec: s, ...options }],
    startWorkflowOperation: new WithStartWorkflowOperation('serviceWorkflow', {
      workflowId: serviceWorkflowId(s.name),
      taskQueue,
      args: [{ name: s.name }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    }),
  });
}

/** The rollout's result, once the service workflow has recorded it too. */
async function rolloutResult(id: string): Promise<RolloutResult> {
  const result = (await env.client.workflow.getHandle(id).result()) as RolloutResult;
  const service = id.replace(/^rollout-(.*)-v\d+$/, 'service-$1');
  await serviceSettled(env.client.workflow.getHandle(service), id);
  return result;
}

/** Versions that receive traffic in one setTraffic call, with the number of backends each. */
function backendsByVersion(call: { version: number; weight: number }[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const b of call) if (b.weight > 0) out[b.version] = (out[b.version] ?? 0) + 1;
  return out;
}

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
      expect(skippedMinutes).toBeGreaterThanOrEqual(120);
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
      for (const call of world.trafficCalls.slice(callsBefore)) expect(backendsByVersion(call)[1]).toBe(2);
      expect(world.terminated).toEqual(['bad-v2-r3']);
      expect([...world.running].sort()).toEqual(['bad-v1-r1', 'bad-v1-r2']);
    });
  });

  test('a v2 replica whose process dies after it became ready rolls the rollout back', async () => {
    await withWorker({ 2: { kind: 'dies-after-ready', message: 'replica stopped (exit code 137)' } }, async (world, tq) => {
      const v1 = spec({ name: 'dies' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const result = await rolloutResult((await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } })).rolloutWorkflowId);
      expect(result.outcome).toBe('rolled_back');
      expect(result.reason).toMatch(/replica dies-v2-r3 failed: replica stopped \(exit code 137\)/);
      expect(result.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['1:READY', '1:READY']);
      expect(backendsByVersion(world.trafficCalls[world.trafficCalls.length - 1])).toEqual({ 1: 2 });
      expect([...world.running].filter((id) => id.includes('-v2-'))).toEqual([]);
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
    await withWorker({ 2: { kind: 'ready', afterMs: 300 } }, async (world, tq) => {
      const v1 = spec({ name: 'pausy' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const service = env.client.workflow.getHandle(serviceWorkflowId('pausy'));
      const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
      await service.signal(pauseSignal);
      const rollout = env.client.workflow.getHandle(d2.rolloutWorkflowId);
      await waitFor(async () => (await rollout.query(rolloutStatusQuery)).phase === 'paused');
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

  test('rollback mid-rollout returns all traffic to v1 and removes v2', async () => {
    await withWorker({ 2: { kind: 'never' } }, async (world, tq) => {
      const v1 = spec({ name: 'manual' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
      const rollout = env.client.workflow.getHandle(d2.rolloutWorkflowId);
      await waitFor(async () => (await rollout.query(rolloutStatusQuery)).replicas.some((r) => r.version === 2 && r.status === 'STARTING'));
      await env.client.workflow.getHandle(serviceWorkflowId('manual')).signal(rollbackSignal, { reason: 'bad latency' });
      const result = await rolloutResult(d2.rolloutWorkflowId);
      expect(result.outcome).toBe('rolled_back');
      expect(result.reason).toBe('manual rollback: bad latency');
      expect([...world.running].sort()).toEqual(['manual-v1-r1', 'manual-v1-r2']);
    });
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
