/**
 * Shared set-up of the workflow tests: a spec builder, a worker over fake activities on a
 * fresh task queue, deploys through the real client, and waiting for outcomes. The Temporal
 * server and client are real (the time-skipping test server).
 */
import { WithStartWorkflowOperation } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type InjectedSinks } from '@temporalio/worker';
import { serviceSettled } from '../../src/cli/commands/deploy';
import type { ServiceSpec } from '../../src/spec/types';
import { deployUpdate } from '../../src/workflows/messages';
import type { DeployInput, RolloutResult } from '../../src/workflows/types';
import { serviceWorkflowId } from '../../src/workflows/types';
import { rolloutMetricsSinks } from '../../src/observability/metrics-sinks';
import type { RolloutMetricsSinks } from '../../src/workflows/metrics-sink';
import { fakeWorld, type FakeWorld, type Readiness } from './fake-activities';
import { workflowBundle } from './temporal-env';
import { waitUntil } from './wait';

export function serviceSpec(overrides: Partial<ServiceSpec> & { version?: string } = {}): ServiceSpec {
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

let taskQueueSeq = 0;

export function workflowHarness(getEnv: () => TestWorkflowEnvironment, opts: { sinks?: () => InjectedSinks<RolloutMetricsSinks> } = {}) {
  /** Runs `fn` with a worker over fake activities on a fresh task queue. */
  async function withWorker<T>(readiness: Record<number, Readiness>, fn: (world: FakeWorld, taskQueue: string) => Promise<T>): Promise<T> {
    const world = fakeWorld(readiness, getEnv().client);
    const taskQueue = `test-${process.pid}-${++taskQueueSeq}`;
    const worker = await Worker.create({
      connection: getEnv().nativeConnection,
      taskQueue,
      workflowBundle: await workflowBundle(),
      activities: world.activities,
      // The rollout's metrics sink: accepted and dropped unless a test counts (test/workflows/metrics-sinks).
      sinks: opts.sinks?.() ?? rolloutMetricsSinks(),
    });
    return worker.runUntil(fn(world, taskQueue));
  }

  async function deployOrNot(taskQueue: string, s: ServiceSpec, options: Omit<DeployInput, 'spec'> = {}) {
    return getEnv().client.workflow.executeUpdateWithStart(deployUpdate, {
      args: [{ spec: s, ...options }],
      startWorkflowOperation: new WithStartWorkflowOperation('serviceWorkflow', {
        workflowId: serviceWorkflowId(s.name),
        taskQueue,
        args: [{ name: s.name }],
        workflowIdConflictPolicy: 'USE_EXISTING',
      }),
    });
  }

  /** Deploys a spec that starts a rollout (its workflow id is then always there). */
  async function deploy(taskQueue: string, s: ServiceSpec, options: Omit<DeployInput, 'spec'> = {}) {
    const result = await deployOrNot(taskQueue, s, options);
    if (!result.rolloutWorkflowId) throw new Error(`no rollout started: ${result.reason}`);
    return { ...result, rolloutWorkflowId: result.rolloutWorkflowId };
  }

  /** The rollout's result, once the service workflow has recorded it too. */
  async function rolloutResult(id: string): Promise<RolloutResult> {
    const result = (await getEnv().client.workflow.getHandle(id).result()) as RolloutResult;
    const service = id.replace(/^rollout-(.*)-v\d+$/, 'service-$1');
    await serviceSettled(getEnv().client.workflow.getHandle(service), id);
    return result;
  }

  return { withWorker, deploy, deployOrNot, rolloutResult };
}

/** Versions that receive traffic in one setTraffic call, with the number of backends each. */
export function backendsByVersion(call: { version: number; weight: number }[]): Record<number, number> {
  const out: Record<number, number> = {};
  for (const b of call) if (b.weight > 0) out[b.version] = (out[b.version] ?? 0) + 1;
  return out;
}

/** Percent of traffic per version in one setTraffic call (weights summed), rounded to 0.1. */
export function percentByVersion(call: { version: number; weight: number }[]): Record<number, number> {
  const total = call.reduce((a, b) => a + b.weight, 0);
  const out: Record<number, number> = {};
  for (const b of call) if (b.weight > 0) out[b.version] = (out[b.version] ?? 0) + b.weight;
  for (const v of Object.keys(out)) out[Number(v)] = Math.round((out[Number(v)] * 1000) / total) / 10;
  return out;
}

/** Polls a condition on the workflows (see waitUntil) until it holds. */
export function waitFor(check: () => Promise<boolean>, timeoutMs = 60_000, what = 'a workflow condition'): Promise<void> {
  return waitUntil(check, what, timeoutMs, 100);
}
