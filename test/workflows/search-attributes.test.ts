/**
 * Search attributes on the real time-skipping test server (in-memory activities): a rollout
 * carries its service, version and strategy from its start and its phase, canary percent and
 * outcome as they change, each upsert changing something; the service carries RolloutService.
 * A namespace that lacks some gets only those it has: the server fails the workflow task of an
 * upsert of an attribute it lacks, so a rollout that completes there set none of them.
 */
import { defaultPayloadConverter, type SearchAttributePair } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ServiceSpec } from '../../src/spec/types';
import { controlUpdate, rolloutStatusQuery } from '../../src/workflows/messages';
import { RolloutCanaryPercent, RolloutOutcome, RolloutPhase, RolloutService, RolloutStrategy, RolloutVersion, ROLLOUT_SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import { serviceWorkflowId } from '../../src/workflows/types';
import { createTimeSkippingEnv, timeSkippingServerPerTest } from '../helpers/temporal-env';
import { serviceSpec, waitFor, workflowHarness } from '../helpers/workflow-harness';

let env: TestWorkflowEnvironment;
const { withWorker, deploy, rolloutResult } = workflowHarness(() => env);

const canary = (name: string): ServiceSpec =>
  serviceSpec({ name, replicas: 2, rollout: { strategy: 'canary', max_surge: 1, max_unavailable: 0, timeout: '120m', steps: [{ weight: 50 }, { pause: {} }, { weight: 100 }] } });
const v2 = (s: ServiceSpec): ServiceSpec => ({ ...s, env: { MODEL_VERSION: 'v2' } });

/** The workflow's rollout search attributes now, by name. */
async function attributesOf(workflowId: string): Promise<Record<string, unknown>> {
  const { typedSearchAttributes } = await env.client.workflow.getHandle(workflowId).describe();
  const out: Record<string, unknown> = {};
  for (const key of ROLLOUT_SEARCH_ATTRIBUTES) {
    const value = typedSearchAttributes.get(key);
    if (value !== undefined) out[key.name] = value;
  }
  return out;
}

/**
 * The workflow's writes of rollout search attributes from its history: the start's, then each
 * upsert's values with the workflow task that sent it (upserts of only the SDK's own
 * TemporalChangeVersion, which patched() sets, are left out).
 */
async function writesOf(workflowId: string): Promise<{ task?: string; values: Record<string, unknown> }[]> {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const ours = new Set(ROLLOUT_SEARCH_ATTRIBUTES.map((key) => key.name));
  const decode = (fields: Record<string, unknown> | null | undefined) =>
    Object.fromEntries(Object.entries(fields ?? {}).filter(([name]) => ours.has(name)).map(([name, payload]) => [name, defaultPayloadConverter.fromPayload(payload as never)]));
  const writes: { task?: string; values: Record<string, unknown> }[] = [];
  for (const e of history.events ?? []) {
    const started = e.workflowExecutionStartedEventAttributes;
    if (started) writes.push({ values: decode(started.searchAttributes?.indexedFields) });
    const upsert = e.upsertWorkflowSearchAttributesEventAttributes;
    const values = decode(upsert?.searchAttributes?.indexedFields);
    if (upsert && Object.keys(values).length > 0) writes.push({ task: String(upsert.workflowTaskCompletedEventId), values });
  }
  return writes;
}

/** Every upsert changes at least one value (history size matters: no upsert that changes nothing). */
function expectBatchedWrites(writes: { task?: string; values: Record<string, unknown> }[]): void {
  const current: Record<string, unknown> = {};
  for (const [i, w] of writes.entries()) {
    if (i > 0) expect({ upsert: w.values, changes: Object.entries(w.values).some(([k, v]) => JSON.stringify(current[k]) !== JSON.stringify(v)) }).toEqual({ upsert: w.values, changes: true });
    Object.assign(current, w.values);
  }
}

const only = (pairs: SearchAttributePair[]): Record<string, unknown> => Object.fromEntries(pairs.map((p) => [p.key.name, p.value]));

describe('a namespace with every rollout search attribute', () => {
  timeSkippingServerPerTest((created) => (env = created));

  test('a canary rollout carries its phase and canary percent as they change, then its outcome; the service carries RolloutService', async () => {
    await withWorker({}, async (_world, tq) => {
      const v1 = canary('sa-canary');
      const d1 = await deploy(tq, v1);
      await rolloutResult(d1.rolloutWorkflowId);
      expect(await attributesOf(d1.rolloutWorkflowId)).toEqual(
        only([
          { key: RolloutService, value: 'sa-canary' },
          { key: RolloutVersion, value: 1 },
          { key: RolloutStrategy, value: 'canary' },
          { key: RolloutPhase, value: 'succeeded' },
          { key: RolloutCanaryPercent, value: 100 },
          { key: RolloutOutcome, value: 'succeeded' },
        ]),
      );

      const d2 = await deploy(tq, v2(v1));
      const id = d2.rolloutWorkflowId;
      // Held at {pause: {}} with half the traffic on v2.
      await waitFor(async () => (await env.client.workflow.getHandle(id).query(rolloutStatusQuery)).stepIndex === 1);
      await waitFor(async () => (await attributesOf(id)).RolloutCanaryPercent === 50);
      expect(await attributesOf(id)).toEqual({ RolloutService: 'sa-canary', RolloutVersion: 2, RolloutStrategy: 'canary', RolloutPhase: 'rolling_out', RolloutCanaryPercent: 50 });

      await env.client.workflow.getHandle(id).executeUpdate(controlUpdate, { args: [{ action: 'pause' }] });
      await waitFor(async () => (await attributesOf(id)).RolloutPhase === 'paused');

      await env.client.workflow.getHandle(id).executeUpdate(controlUpdate, { args: [{ action: 'promote' }] });
      expect((await rolloutResult(id)).outcome).toBe('succeeded');
      expect(await attributesOf(id)).toEqual({ RolloutService: 'sa-canary', RolloutVersion: 2, RolloutStrategy: 'canary', RolloutPhase: 'succeeded', RolloutCanaryPercent: 100, RolloutOutcome: 'succeeded' });

      const writes = await writesOf(id);
      // Started with what the service knew: rolling out, no canary traffic yet.
      expect(writes[0].values).toEqual({ RolloutService: 'sa-canary', RolloutVersion: 2, RolloutStrategy: 'canary', RolloutPhase: 'rolling_out', RolloutCanaryPercent: 0 });
      expectBatchedWrites(writes);
      expect(writes.map((w) => w.values.RolloutPhase).filter(Boolean)).toEqual(['rolling_out', 'paused', 'rolling_out', 'succeeded']);

      // The service: RolloutService only, set once (its first rollout), not once per rollout.
      expect(await attributesOf(serviceWorkflowId('sa-canary'))).toEqual({ RolloutService: 'sa-canary' });
      expect(await writesOf(serviceWorkflowId('sa-canary'))).toEqual([{ values: {} }, { task: expect.any(String), values: { RolloutService: 'sa-canary' } }]);
    });
  });

  test('a rollback ends rolled_back; an in-place update is tagged in_place', async () => {
    await withWorker({}, async (world, tq) => {
      const v1 = serviceSpec({ name: 'sa-rollback' });
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      world.readiness.set(2, { kind: 'never' });
      const d2 = await deploy(tq, v2(v1));
      await waitFor(async () => (await env.client.workflow.getHandle(d2.rolloutWorkflowId).query(rolloutStatusQuery)).replicas.some((r) => r.version === 2));
      await env.client.workflow.getHandle(d2.rolloutWorkflowId).executeUpdate(controlUpdate, { args: [{ action: 'rollback', reason: 'search attributes test' }] });
      expect((await rolloutResult(d2.rolloutWorkflowId)).outcome).toBe('rolled_back');
      expect(await attributesOf(d2.rolloutWorkflowId)).toMatchObject({ RolloutVersion: 2, RolloutStrategy: 'rolling', RolloutPhase: 'rolled_back', RolloutCanaryPercent: 0, RolloutOutcome: 'rolled_back' });
      expectBatchedWrites(await writesOf(d2.rolloutWorkflowId));

      world.readiness.delete(2);
      const d3 = await deploy(tq, { ...v1, replicas: 3 });
      expect(d3.mode).toBe('in_place');
      await rolloutResult(d3.rolloutWorkflowId);
      expect(await attributesOf(d3.rolloutWorkflowId)).toMatchObject({ RolloutVersion: 3, RolloutStrategy: 'in_place', RolloutOutcome: 'succeeded' });
    });
  });
});

describe('a namespace that lacks some of them', () => {
  const has = ['RolloutService', 'RolloutOutcome'];
  beforeEach(async () => {
    env = await createTimeSkippingEnv(has);
  }, 120_000);
  afterEach(async () => {
    await env?.teardown();
  });

  test('only those it has are set, and rollouts complete', async () => {
    await withWorker({}, async (world, tq) => {
      world.searchAttributes = has;
      const v1 = canary('sa-some');
      await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
      const d2 = await deploy(tq, v2(v1));
      const id = d2.rolloutWorkflowId;
      await waitFor(async () => (await env.client.workflow.getHandle(id).query(rolloutStatusQuery)).stepIndex === 1);
      await env.client.workflow.getHandle(id).executeUpdate(controlUpdate, { args: [{ action: 'promote' }] });
      expect((await rolloutResult(id)).outcome).toBe('succeeded');
      expect(await attributesOf(id)).toEqual({ RolloutService: 'sa-some', RolloutOutcome: 'succeeded' });
      expect(await attributesOf(serviceWorkflowId('sa-some'))).toEqual({ RolloutService: 'sa-some' });
    });
  });

  test('a worker that finds none sets none, and rollouts complete', async () => {
    await withWorker({}, async (world, tq) => {
      world.searchAttributes = [];
      const d1 = await deploy(tq, serviceSpec({ name: 'sa-none' }));
      expect((await rolloutResult(d1.rolloutWorkflowId)).outcome).toBe('succeeded');
      expect(await attributesOf(d1.rolloutWorkflowId)).toEqual({});
      expect(await attributesOf(serviceWorkflowId('sa-none'))).toEqual({});
    });
  });
});
