/**
 * startReplica and retireReplicas as composed from their parts (src/activities/start-replica.ts):
 * a carried traffic change is set before anything is drained, and a router that cannot be reached
 * fails the attempt before any replica is touched.
 */
import { createReplicaSteps } from '../../src/activities/start-replica';
import type { SetTrafficInput } from '../../src/activities/types';
import { serviceSpec } from '../helpers/workflow-harness';

function parts(opts: { trafficFails?: boolean } = {}) {
  const calls: string[] = [];
  return {
    calls,
    parts: {
      async setTraffic(input: SetTrafficInput) {
        if (opts.trafficFails) throw new Error('router unreachable');
        calls.push(`traffic ${input.backends.map((b) => b.replicaId).join(',')} #${input.order?.seq}`);
        return { endpoint: `http://router/${input.service}` };
      },
      async launchReplica(input: { replicaId: string }) {
        calls.push(`launch ${input.replicaId}`);
        return { replicaId: input.replicaId, endpoint: 'http://127.0.0.1:1', gpuIds: [] };
      },
      async waitReplicaReady(input: { replicaId: string }) {
        calls.push(`ready ${input.replicaId}`);
      },
      async drainReplica(input: { replicaId: string }) {
        calls.push(`drain ${input.replicaId}`);
        return { drained: true, inflight: 0 };
      },
      async terminateReplica(input: { replicaId: string }) {
        calls.push(`terminate ${input.replicaId}`);
      },
    },
  };
}

const traffic: SetTrafficInput = { service: 's', backends: [{ replicaId: 's-v2-r2', version: 2, url: 'http://127.0.0.1:1', weight: 1 }], order: { writer: 'rollout-s-v2/run', seq: 3 } };
const start = { replicaId: 's-v2-r3', service: 's', version: 2, spec: serviceSpec({ name: 's' }), probe: serviceSpec({ name: 's' }).readiness_probe, deadline: Date.now() + 60_000, drainTimeoutMs: 1000 };

test('startReplica sets the carried traffic first, then retires and starts; it answers both', async () => {
  const { calls, parts: p } = parts();
  const result = await createReplicaSteps(p).startReplica({ ...start, retire: [{ replicaId: 's-v1-r1', provider: 'local', drain: true }], traffic });
  expect(calls[0]).toBe('traffic s-v2-r2 #3');
  expect(calls.indexOf('drain s-v1-r1')).toBeLessThan(calls.indexOf('terminate s-v1-r1'));
  expect(calls).toEqual(expect.arrayContaining(['launch s-v2-r3', 'ready s-v2-r3', 'drain s-v1-r1', 'terminate s-v1-r1']));
  expect(result).toEqual({ replicaId: 's-v2-r3', endpoint: 'http://127.0.0.1:1', gpuIds: [], traffic: { endpoint: 'http://router/s' } });
});

test('without a carried change, startReplica calls no router and answers the replica alone', async () => {
  const { calls, parts: p } = parts();
  const result = await createReplicaSteps(p).startReplica({ ...start, retire: [] });
  expect(calls).toEqual(['launch s-v2-r3', 'ready s-v2-r3']);
  expect(result).not.toHaveProperty('traffic');
});

test('a router that cannot be reached fails the attempt before any replica is drained, terminated or launched', async () => {
  const { calls, parts: p } = parts({ trafficFails: true });
  const steps = createReplicaSteps(p);
  await expect(steps.startReplica({ ...start, retire: [{ replicaId: 's-v1-r1', provider: 'local', drain: true }], traffic })).rejects.toThrow('router unreachable');
  await expect(steps.retireReplicas({ service: 's', retire: [{ replicaId: 's-v1-r1', provider: 'local', drain: true }], drainTimeoutMs: 1000, traffic })).rejects.toThrow('router unreachable');
  expect(calls).toEqual([]);
});

test('retireReplicas sets the carried traffic before it drains', async () => {
  const { calls, parts: p } = parts();
  const result = await createReplicaSteps(p).retireReplicas({ service: 's', retire: [{ replicaId: 's-v1-r1', provider: 'local', drain: true }, { replicaId: 's-v1-r2', provider: 'local', drain: false }], drainTimeoutMs: 1000, traffic });
  expect(calls[0]).toBe('traffic s-v2-r2 #3');
  expect(calls).not.toContain('drain s-v1-r2');
  expect(calls).toEqual(expect.arrayContaining(['drain s-v1-r1', 'terminate s-v1-r1', 'terminate s-v1-r2']));
  expect(result).toEqual({ traffic: { endpoint: 'http://router/s' } });
});
