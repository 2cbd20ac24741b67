/**
 * Stray replicas on the real time-skipping test server (activities are in-memory fakes whose
 * "provider" lists what runs): a rollout that ends sweeps the losing version's replicas it does
 * not remember, and only those; a rollout workflow cancelled from outside leaves nothing of its
 * version behind and traffic back on the serving replicas; `gc` finds and terminates what no
 * record owns, lists only on a dry run, is refused during a rollout, and works for a service
 * that has no workflow.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { gcUpdate, rolloutStatusQuery, serviceStatusQuery } from '../../src/workflows/messages';
import { WATCH_WINDOW_MS } from '../../src/workflows/serving-watch';
import { gcWorkflowId, serviceWorkflowId, type GcResult, type ServiceStatus } from '../../src/workflows/types';
import { Worker } from '@temporalio/worker';
import { fakeWorld } from '../helpers/fake-activities';
import { timeSkippingServerPerTest, workflowBundle } from '../helpers/temporal-env';
import { serviceSpec, waitFor, workflowHarness } from '../helpers/workflow-harness';

let env: TestWorkflowEnvironment;
const { withWorker, deploy, rolloutResult } = workflowHarness(() => env);

timeSkippingServerPerTest((created) => (env = created));

const statusOf = (service: string): Promise<ServiceStatus> => env.client.workflow.getHandle(serviceWorkflowId(service)).query(serviceStatusQuery);
const gc = (service: string, dryRun = false): Promise<GcResult> => env.client.workflow.getHandle(serviceWorkflowId(service)).executeUpdate(gcUpdate, { args: [{ dryRun }] });
const v2 = <T extends { env: object }>(s: T): T => ({ ...s, env: { MODEL_VERSION: 'v2' } });

test('a rollback sweeps the new version replicas it does not remember, and nothing else', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = serviceSpec({ name: 'sweep1', rollout: { strategy: 'rolling', max_surge: 1, max_unavailable: 0, timeout: '30m' } });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    // Left by a crash: one of the coming v2 (a launch whose result was lost), one of v1 that no record names.
    world.running.add('sweep1-v2-r99');
    world.running.add('sweep1-v1-r98');
    world.readiness.set(2, { kind: 'never' });
    const result = await rolloutResult((await deploy(tq, v2(v1))).rolloutWorkflowId);
    expect(result.outcome).toBe('rolled_back');
    expect(world.terminated).toContain('sweep1-v2-r99');
    expect(world.running.has('sweep1-v2-r99')).toBe(false);
    // Another version's stray is gc's business, not the rollout's; the serving replicas stay.
    expect(world.running.has('sweep1-v1-r98')).toBe(true);
    const serving = (await statusOf('sweep1')).replicas.map((r) => r.id);
    expect(serving).toHaveLength(2);
    for (const id of serving) expect(world.running.has(id)).toBe(true);
    expect([...world.running].filter((id) => id.startsWith('sweep1-v2-'))).toEqual([]);
  });
});

test('a rollout that succeeds sweeps the old version replicas it does not remember', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = serviceSpec({ name: 'sweep2' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.running.add('sweep2-v1-r99');
    const result = await rolloutResult((await deploy(tq, v2(v1))).rolloutWorkflowId);
    expect(result.outcome).toBe('succeeded');
    expect(world.running.has('sweep2-v1-r99')).toBe(false);
    const serving = (await statusOf('sweep2')).replicas;
    expect(serving.map((r) => r.version)).toEqual([2, 2]);
    expect([...world.running].sort()).toEqual(serving.map((r) => r.id).sort());
  });
});

test('an in-place update keeps its relabelled replicas (their provider records still say the old version)', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = serviceSpec({ name: 'sweep3' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const result = await rolloutResult((await deploy(tq, { ...v1, replicas: 3 })).rolloutWorkflowId);
    expect(result.outcome).toBe('succeeded');
    const serving = (await statusOf('sweep3')).replicas;
    expect(serving).toHaveLength(3);
    for (const r of serving) expect(world.running.has(r.id)).toBe(true);
    expect(world.terminated).toEqual([]);
  });
});

// Cancelled here: the time-skipping server does not tell a parent that its child was terminated;
// test/e2e/aws.e2e.test.ts terminates one on the real dev server.
test('a rollout workflow cancelled from outside: traffic back on the serving replicas, nothing of its version left', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = serviceSpec({ name: 'cut' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const servingIds = (await statusOf('cut')).replicas.map((r) => r.id).sort();
    world.readiness.set(2, { kind: 'never' });
    const d2 = await deploy(tq, v2(v1));
    const h = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    await waitFor(async () => (await h.query(rolloutStatusQuery)).replicas.some((r) => r.version === 2 && world.running.has(r.id)));
    const callsBefore = world.trafficCalls.length;
    await h.cancel();
    await waitFor(async () => (await statusOf('cut')).lastRollout?.version === 2);
    await waitFor(async () => ![...world.running].some((id) => id.startsWith('cut-v2-')));
    const s = await statusOf('cut');
    expect(s.version).toBe(1);
    expect(s.lastRollout).toMatchObject({ version: 2, outcome: 'failed' });
    const after = world.trafficCalls.slice(callsBefore);
    expect(after.length).toBeGreaterThanOrEqual(1);
    expect(after[0].map((b) => b.replicaId).sort()).toEqual(servingIds);
    for (const id of servingIds) expect(world.running.has(id)).toBe(true);
  });
});

test('gc: a dry run lists the strays, gc terminates them, owned replicas stay; refused during a rollout', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = serviceSpec({ name: 'gc1' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const owned = (await statusOf('gc1')).replicas.map((r) => r.id).sort();
    world.running.add('gc1-v1-r99');
    world.running.add('gc1-v7-r3');
    world.running.add('other-v1-r1'); // another service's: never touched

    const dry = await gc('gc1', true);
    expect(dry).toMatchObject({ service: 'gc1', dryRun: true, terminated: [] });
    expect(dry.strays.map((s) => s.replicaId)).toEqual(['gc1-v1-r99', 'gc1-v7-r3']);
    expect(world.running.has('gc1-v1-r99')).toBe(true);

    const real = await gc('gc1');
    expect(real).toMatchObject({ dryRun: false, terminated: ['gc1-v1-r99', 'gc1-v7-r3'] });
    expect([...world.running].filter((id) => id.startsWith('gc1-')).sort()).toEqual(owned);
    expect(world.running.has('other-v1-r1')).toBe(true);
    expect((await gc('gc1')).strays).toEqual([]);

    world.readiness.set(2, { kind: 'never' });
    const d2 = await deploy(tq, v2(v1));
    await expect(gc('gc1')).rejects.toThrow(WorkflowUpdateFailedError);
    await expect(gc('gc1')).rejects.toMatchObject({ cause: { message: expect.stringMatching(/a rollout of gc1 v2 is in progress/) } });
    await env.client.workflow.getHandle(d2.rolloutWorkflowId).executeUpdate('control', { args: [{ action: 'rollback' }] });
    await rolloutResult(d2.rolloutWorkflowId);
  });
});

test('gc whose provider cannot list fails with the provider\'s words; the service goes on', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = serviceSpec({ name: 'gc2' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.strayListingFailure = { type: 'CredentialsError', message: 'DescribeInstances: AuthFailure (credentials refused)' };
    await expect(gc('gc2')).rejects.toMatchObject({ cause: { type: 'GcFailed', message: 'gc of gc2 failed: DescribeInstances: AuthFailure (credentials refused)' } });
    world.strayListingFailure = undefined;
    expect((await gc('gc2')).strays).toEqual([]);
    expect((await statusOf('gc2')).replicas.map((r) => r.status)).toEqual(['READY', 'READY']);
  });
});

test('gc of a service with no workflow: every replica the provider holds for it is a stray', async () => {
  await withWorker({}, async (world, tq) => {
    world.running.add('gone-v3-r1');
    world.running.add('gone-v3-r2');
    const dry = (await env.client.workflow.execute('gcWorkflow', { workflowId: gcWorkflowId('gone'), taskQueue: tq, args: ['gone', { dryRun: true }] })) as GcResult;
    expect(dry.strays.map((s) => s.replicaId)).toEqual(['gone-v3-r1', 'gone-v3-r2']);
    expect(world.running.size).toBe(2);
    const real = (await env.client.workflow.execute('gcWorkflow', { workflowId: gcWorkflowId('gone'), taskQueue: tq, args: ['gone', {}] })) as GcResult;
    expect(real.terminated).toEqual(['gone-v3-r1', 'gone-v3-r2']);
    expect(world.running.size).toBe(0);
  });
});

test('gc of a service with no workflow that is deployed while its replicas are listed terminates nothing', async () => {
  await withWorker({}, async (world, tq) => {
    // The service runs by the time the gc asks (its replicas are what the listing found).
    await rolloutResult((await deploy(tq, serviceSpec({ name: 'racer' }))).rolloutWorkflowId);
    const ids = [...world.running].filter((id) => id.startsWith('racer-')).sort();
    const r = (await env.client.workflow.execute('gcWorkflow', { workflowId: gcWorkflowId('racer'), taskQueue: tq, args: ['racer', {}] })) as GcResult;
    expect(r.strays.map((s) => s.replicaId)).toEqual(ids);
    expect(r.terminated).toEqual([]);
    expect(r.note).toMatch(/racer was deployed while its replicas were being listed: nothing was terminated/);
    for (const id of ids) expect(world.running.has(id)).toBe(true);
  });
});

test('a gc-<service> workflow no worker picked up in time does nothing when one comes', async () => {
  const tq = `stale-gc-${process.pid}`;
  const handle = await env.client.workflow.start('gcWorkflow', { workflowId: gcWorkflowId('late'), taskQueue: tq, args: ['late', { startWithinMs: 1000 }] });
  // No worker on that queue for longer than the gc allows: real time has to pass (the server's clock).
  await new Promise((r) => setTimeout(r, 2500));
  const world = fakeWorld({}, env.client);
  world.running.add('late-v1-r1');
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: tq, workflowBundle: await workflowBundle(), activities: world.activities });
  const r = (await worker.runUntil(handle.result())) as GcResult;
  expect(r.note).toMatch(/not run: no worker picked this gc up within 1 s/);
  expect(r.terminated).toEqual([]);
  expect(world.running.has('late-v1-r1')).toBe(true);
});

test('a terminate that fails for good ends the rollout as failed, saying why (the workflow does not fail)', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = serviceSpec({ name: 'stuckterm' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    world.terminateFailure = { type: 'CredentialsError', message: 'TerminateInstances: AuthFailure (credentials refused)' };
    const result = await rolloutResult((await deploy(tq, v2(v1))).rolloutWorkflowId);
    expect(result.outcome).toBe('failed');
    expect(result.reason).toMatch(/TerminateInstances: AuthFailure \(credentials refused\)/);
    const s = await statusOf('stuckterm');
    expect(s.lastRollout).toMatchObject({ version: 2, outcome: 'failed', reason: expect.stringMatching(/AuthFailure/) });
    // What could not be terminated is handed back FAILED (not SHUTTING_DOWN, which nothing would
    // finish): self-healing keeps trying, and once the credentials are good again it is removed
    // and the next deploy goes through.
    expect(result.replicas.filter((r) => r.status === 'SHUTTING_DOWN')).toEqual([]);
    expect(result.replicas.some((r) => r.status === 'FAILED' && /could not be terminated/.test(r.message ?? ''))).toBe(true);
    world.terminateFailure = undefined;
    await env.sleep('2 minutes');
    await waitFor(async () => (await statusOf('stuckterm')).replicas.every((r) => r.status === 'READY'));
    const d3 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v3' } });
    expect((await rolloutResult(d3.rolloutWorkflowId)).outcome).toBe('succeeded');
  });
});

test('self-healing whose terminate fails for good waits and tries again; the service workflow does not fail', async () => {
  await withWorker({}, async (world, tq) => {
    await rolloutResult((await deploy(tq, serviceSpec({ name: 'healterm' }))).rolloutWorkflowId);
    const [dead] = (await statusOf('healterm')).replicas.map((r) => r.id);
    world.terminateFailure = { type: 'CredentialsError', message: 'TerminateInstances: AuthFailure' };
    world.kill(dead, 'instance terminated');
    await env.sleep(WATCH_WINDOW_MS);
    await waitFor(async () => (await statusOf('healterm')).replicas.some((r) => r.id === dead && r.status === 'FAILED' && /could not be terminated/.test(r.message ?? '')));
    world.terminateFailure = undefined;
    await env.sleep('2 minutes');
    await waitFor(async () => {
      const st = await statusOf('healterm');
      return st.replicas.length === 2 && st.replicas.every((r) => r.status === 'READY') && !st.replicas.some((r) => r.id === dead);
    });
    expect((await env.client.workflow.getHandle(serviceWorkflowId('healterm')).describe()).status.name).toBe('RUNNING');
  });
});
