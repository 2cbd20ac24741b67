/**
 * Self-healing on the real time-skipping test server (activities are in-memory fakes): a
 * serving replica that dies between rollouts is taken out of traffic and replaced; so is every
 * one of them; during a rollout an old replica that dies is noticed too. The fake watches look
 * again every hour (skipped time): each test skips an hour after killing a replica.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { controlUpdate, rolloutStatusQuery, serviceStatusQuery } from '../../src/workflows/messages';
import { WATCH_WINDOW_MS } from '../../src/workflows/serving-watch';
import { rolloutWorkflowId, serviceWorkflowId, type ServiceStatus } from '../../src/workflows/types';
import { timeSkippingServerPerTest } from '../helpers/temporal-env';
import { serviceSpec, waitFor, workflowHarness } from '../helpers/workflow-harness';

let env: TestWorkflowEnvironment;
const { withWorker, deploy, deployOrNot, rolloutResult } = workflowHarness(() => env);

timeSkippingServerPerTest((created) => (env = created));

const statusOf = (service: string): Promise<ServiceStatus> => env.client.workflow.getHandle(serviceWorkflowId(service)).query(serviceStatusQuery);
const summary = (s: ServiceStatus) => s.replicas.map((r) => `${r.version}:${r.status}`);
/** Lets the service's current watch window end (skipped time), so the next watch sees the change. */
const nextWatchWindow = () => env.sleep(WATCH_WINDOW_MS);

test('a serving replica that dies is taken out of traffic and replaced by one of the same version', async () => {
  await withWorker({}, async (world, tq) => {
    const v1 = serviceSpec({ name: 'heal1' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const before = await statusOf('heal1');
    const [dead, kept] = before.replicas.map((r) => r.id);
    const callsBefore = world.trafficCalls.length;

    world.kill(dead, 'exit code 137');
    await nextWatchWindow();
    await waitFor(async () => {
      const s = await statusOf('heal1');
      return summary(s).join() === '1:READY,1:READY' && !s.replicas.some((r) => r.id === dead);
    });
    const after = await statusOf('heal1');
    expect(after.version).toBe(1);
    expect(after.replicas.map((r) => r.id)).toContain(kept);
    const replacement = after.replicas.find((r) => r.id !== kept)!;
    expect(replacement.id).toMatch(/^heal1-v1-r\d+$/);
    expect(after.healing).toMatchObject({ replaced: 1, lastLost: `replica ${dead} stopped (exit code 137)` });
    // Out of traffic at once: the first traffic change after the death leaves it out, before any replacement is in.
    const calls = world.trafficCalls.slice(callsBefore);
    expect(calls[0].map((b) => b.replicaId)).toEqual([kept]);
    for (const call of calls) expect(call.map((b) => b.replicaId)).not.toContain(dead);
    expect(calls[calls.length - 1].map((b) => b.replicaId).sort()).toEqual([kept, replacement.id].sort());
    // Nothing is left of the dead one, and the same spec again is unchanged.
    expect(world.terminated).toContain(dead);
    expect((await deployOrNot(tq, v1)).mode).toBe('unchanged');
    // The service's idle watch heartbeats seldom (a long heartbeat timeout); the rollout's watches, and healing's own while it replaces, do not.
    expect(await watchHeartbeatTimeouts(serviceWorkflowId('heal1'))).toContain(30);
    expect(await watchHeartbeatTimeouts(rolloutWorkflowId('heal1', 1))).not.toContain(30);
  });
});

/** The heartbeat timeouts (seconds) that a workflow's watchFleet activities were scheduled with. */
async function watchHeartbeatTimeouts(workflowId: string): Promise<Set<number>> {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = (history.events ?? []).map((e) => e.activityTaskScheduledEventAttributes).filter((a) => a?.activityType?.name === 'watchFleet');
  return new Set(scheduled.map((a) => Number(a!.heartbeatTimeout?.seconds ?? 0)));
}

test('a hung replica is replaced while its termination is still waiting out the grace period', async () => {
  await withWorker({}, async (world, tq) => {
    await rolloutResult((await deploy(tq, serviceSpec({ name: 'heal-hung', rollout: { strategy: 'rolling', max_surge: 1, max_unavailable: 0, timeout: '30m' } }))).rolloutWorkflowId);
    const [hung, kept] = (await statusOf('heal-hung')).replicas.map((r) => r.id);
    const release = world.holdTermination(hung);
    world.kill(hung, 'failed 3 readiness probes in a row (last: timeout)');
    await nextWatchWindow();
    // The replacement serves while the hung one is still shutting down: the service is whole again
    // without waiting for the termination.
    await waitFor(async () => {
      const s = await statusOf('heal-hung');
      return s.replicas.filter((r) => r.status === 'READY' && r.id !== hung).length === 2;
    });
    const during = await statusOf('heal-hung');
    expect(during.replicas.find((r) => r.id === hung)?.status).toBe('SHUTTING_DOWN');
    expect(world.terminated).not.toContain(hung);
    const lastTraffic = world.trafficCalls[world.trafficCalls.length - 1].map((b) => b.replicaId);
    expect(lastTraffic).toContain(kept);
    expect(lastTraffic).not.toContain(hung);
    expect(lastTraffic).toHaveLength(2);
    release();
    await waitFor(async () => summary(await statusOf('heal-hung')).join() === '1:READY,1:READY');
    expect(world.terminated).toContain(hung);
    expect((await statusOf('heal-hung')).healing?.replaced).toBe(1);
  });
});

test('every serving replica dies: traffic has no backend (503, not 502), then all are replaced', async () => {
  await withWorker({}, async (world, tq) => {
    await rolloutResult((await deploy(tq, serviceSpec({ name: 'heal2', replicas: 3 }))).rolloutWorkflowId);
    const dead = (await statusOf('heal2')).replicas.map((r) => r.id);
    for (const id of dead) world.kill(id);
    await nextWatchWindow();
    await waitFor(async () => {
      const s = await statusOf('heal2');
      return summary(s).join() === '1:READY,1:READY,1:READY' && s.replicas.every((r) => !dead.includes(r.id));
    });
    expect(world.trafficCalls.some((c) => c.length === 0)).toBe(true);
    expect((await statusOf('heal2')).healing?.replaced).toBe(3);
  });
});

test('an old replica that dies during a rollout is noticed, removed, and brought back by the rollback', async () => {
  await withWorker({ 2: { kind: 'never' } }, async (world, tq) => {
    const v1 = serviceSpec({ name: 'heal3' });
    await rolloutResult((await deploy(tq, v1)).rolloutWorkflowId);
    const [dead] = (await statusOf('heal3')).replicas.map((r) => r.id);
    const d2 = await deploy(tq, { ...v1, env: { MODEL_VERSION: 'v2' } });
    const rollout = env.client.workflow.getHandle(d2.rolloutWorkflowId);
    await waitFor(async () => (await rollout.query(rolloutStatusQuery)).replicas.some((r) => r.version === 2));
    world.kill(dead);
    await nextWatchWindow();
    await waitFor(async () => !(await rollout.query(rolloutStatusQuery)).replicas.some((r) => r.id === dead && r.status === 'READY'));
    const lastCall = world.trafficCalls[world.trafficCalls.length - 1];
    expect(lastCall.map((b) => b.replicaId)).not.toContain(dead);
    await rollout.executeUpdate(controlUpdate, { args: [{ action: 'rollback', reason: 'test' }] });
    const result = await rolloutResult(d2.rolloutWorkflowId);
    expect(result.outcome).toBe('rolled_back');
    expect(result.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['1:READY', '1:READY']);
    expect(result.replicas.map((r) => r.id)).not.toContain(dead);
    expect(world.terminated).toContain(dead);
  });
});
