/**
 * Worked examples of the planner, table-driven (Argo Rollouts style): each row is one
 * observed fleet and the step the planner must choose.
 */
import { planStep, resolveLimits, trafficPercentByVersion } from '../../src/plan';
import type { ObservedReplica, PlanInput } from '../../src/plan/types';

/** "1R" = READY v1, "2S" = STARTING v2, "2P" PROVISIONING, "2F" FAILED, "1N" NOT_READY. Ids are v<version>-<index>. */
function fleet(...codes: string[]): ObservedReplica[] {
  const status = { R: 'READY', S: 'STARTING', P: 'PROVISIONING', F: 'FAILED', N: 'NOT_READY', D: 'SHUTTING_DOWN' } as const;
  return codes.map((code, i) => {
    const version = Number(code.slice(0, -1));
    return { id: `v${version}-${i}`, version, status: status[code.slice(-1) as keyof typeof status] };
  });
}

const base: Omit<PlanInput, 'observed'> = { strategy: 'rolling', replicas: 2, maxSurge: 1, maxUnavailable: 0, targetVersion: 2 };

describe('resolveLimits (Kubernetes rounding)', () => {
  test.each([
    [4, '25%', '25%', 1, 1],
    [10, '25%', '25%', 3, 2],
    [3, 1, '0%', 1, 0],
    [1, 0, '10%', 0, 0],
    [2, '100%', 5, 2, 2],
    [100, '29%', '29%', 29, 29],
  ])('replicas %p, surge %p, unavailable %p → surge %p, unavailable %p', (replicas, surge, unavailable, s, u) => {
    expect(resolveLimits(replicas, surge, unavailable)).toEqual({ maxSurge: s, maxUnavailable: u });
  });
});

describe('planStep worked examples', () => {
  const cases: Array<{ name: string; input: Partial<PlanInput>; observed: ObservedReplica[]; launch: number; remove: string[]; trafficIds: string[]; done?: boolean }> = [
    { name: 'first deploy, N 2: launch both at once (surge room 3)', input: { targetVersion: 1 }, observed: [], launch: 2, remove: [], trafficIds: [] },
    { name: 'first deploy: one ready gets all traffic', input: { targetVersion: 1 }, observed: fleet('1R', '1S'), launch: 0, remove: [], trafficIds: ['v1-0'] },
    { name: 'first deploy done', input: { targetVersion: 1 }, observed: fleet('1R', '1R'), launch: 0, remove: [], trafficIds: ['v1-0', 'v1-1'], done: true },
    { name: 'rolling 1R 1R → launch 1 (surge 1)', input: {}, observed: fleet('1R', '1R'), launch: 1, remove: [], trafficIds: ['v1-0', 'v1-1'] },
    { name: 'rolling 1R 1R 2S → wait, v1 keeps traffic', input: {}, observed: fleet('1R', '1R', '2S'), launch: 0, remove: [], trafficIds: ['v1-0', 'v1-1'] },
    { name: 'rolling 1R 1R 2R → remove one v1, split 1:1', input: {}, observed: fleet('1R', '1R', '2R'), launch: 0, remove: ['v1-0'], trafficIds: ['v1-1', 'v2-2'] },
    { name: 'leavingFreesRoom: 1R 1R 2R → remove one v1 and launch the next v2 in the same step', input: { leavingFreesRoom: true }, observed: fleet('1R', '1R', '2R'), launch: 1, remove: ['v1-0'], trafficIds: ['v1-1', 'v2-2'] },
    { name: 'leavingFreesRoom: a v1 being terminated takes no surge room', input: { leavingFreesRoom: true }, observed: fleet('1D', '1R', '2R'), launch: 1, remove: [], trafficIds: ['v1-1', 'v2-2'] },
    { name: 'without it, a v1 being terminated holds its room', input: {}, observed: fleet('1D', '1R', '2R'), launch: 0, remove: [], trafficIds: ['v1-1', 'v2-2'] },
    { name: 'leavingFreesRoom: GPUs held by a leaving replica still block the launch', input: { leavingFreesRoom: true, gpu: { free: 0, perReplica: 1 } }, observed: fleet('1D', '1R', '2R'), launch: 0, remove: [], trafficIds: ['v1-1', 'v2-2'] },
    { name: 'rolling 1R 2R → launch the second v2', input: {}, observed: fleet('1R', '2R'), launch: 1, remove: [], trafficIds: ['v1-0', 'v2-1'] },
    { name: 'rolling 1R 2R 2R → remove the last v1', input: {}, observed: fleet('1R', '2R', '2R'), launch: 0, remove: ['v1-0'], trafficIds: ['v2-1', 'v2-2'] },
    { name: 'rolling 2R 2R → done', input: {}, observed: fleet('2R', '2R'), launch: 0, remove: [], trafficIds: ['v2-0', 'v2-1'], done: true },
    { name: 'N 4, 25%/25%: launch 1 (surge), v1 all serving', input: { replicas: 4, maxSurge: '25%', maxUnavailable: '25%' }, observed: fleet('1R', '1R', '1R', '1R'), launch: 1, remove: [], trafficIds: ['v1-0', 'v1-1', 'v1-2', 'v1-3'] },
    { name: 'N 4, 25%/25%: surge used, v2 loading → wait (surge first, no early removal)', input: { replicas: 4, maxSurge: '25%', maxUnavailable: '25%' }, observed: fleet('1R', '1R', '1R', '1R', '2S'), launch: 0, remove: [], trafficIds: ['v1-0', 'v1-1', 'v1-2', 'v1-3'] },
    { name: 'surge 0, unavailable 1: remove one v1 first', input: { maxSurge: 0, maxUnavailable: 1 }, observed: fleet('1R', '1R'), launch: 0, remove: ['v1-0'], trafficIds: ['v1-1'] },
    { name: 'surge 0, unavailable 1: then launch into the freed slot', input: { maxSurge: 0, maxUnavailable: 1 }, observed: fleet('1R'), launch: 1, remove: [], trafficIds: ['v1-0'] },
    { name: 'GPU-limited: 0 free, unavailable 1 → remove one v1', input: { maxUnavailable: 1, gpu: { free: 0, perReplica: 1 } }, observed: fleet('1R', '1R'), launch: 0, remove: ['v1-0'], trafficIds: ['v1-1'] },
    { name: 'GPU-limited: 1 free → launch 1 only', input: { maxSurge: 2, gpu: { free: 1, perReplica: 1 } }, observed: fleet('1R', '1R'), launch: 1, remove: [], trafficIds: ['v1-0', 'v1-1'] },
    { name: 'GPU-limited with unavailable 0: blocked, nothing removed', input: { gpu: { free: 0, perReplica: 1 } }, observed: fleet('1R', '1R'), launch: 0, remove: [], trafficIds: ['v1-0', 'v1-1'] },
    { name: 'failed v2 is removed first (it still holds its slot)', input: {}, observed: fleet('1R', '1R', '2F'), launch: 0, remove: ['v2-2'], trafficIds: ['v1-0', 'v1-1'] },
    { name: 'blue-green: launch the whole new fleet', input: { strategy: 'blue_green' }, observed: fleet('1R', '1R'), launch: 2, remove: [], trafficIds: ['v1-0', 'v1-1'] },
    { name: 'blue-green: one v2 ready, traffic stays on v1', input: { strategy: 'blue_green' }, observed: fleet('1R', '1R', '2R', '2S'), launch: 0, remove: [], trafficIds: ['v1-0', 'v1-1'] },
    { name: 'blue-green: all v2 ready → flip and remove v1', input: { strategy: 'blue_green' }, observed: fleet('1R', '1R', '2R', '2R'), launch: 0, remove: ['v1-0', 'v1-1'], trafficIds: ['v2-2', 'v2-3'] },
    { name: 'blue-green rollback before the flip: traffic stays on the 5 ready v1, not the lone v2', input: { strategy: 'blue_green', replicas: 6, targetVersion: 1, maxSurge: 6 }, observed: fleet('1R', '1R', '1R', '1R', '1R', '1S', '2R'), launch: 0, remove: [], trafficIds: ['v1-0', 'v1-1', 'v1-2', 'v1-3', 'v1-4'] },
    { name: 'scale down 4 → 2 (same version)', input: { targetVersion: 1 }, observed: fleet('1R', '1R', '1R', '1S'), launch: 0, remove: ['v1-3', 'v1-0'], trafficIds: ['v1-1', 'v1-2'] },
    { name: 'rollback to v1: loading v2 removed, v1 relaunched at once (surge N)', input: { targetVersion: 1, maxSurge: 2 }, observed: fleet('1R', '2R', '2S'), launch: 1, remove: ['v2-2'], trafficIds: ['v1-0', 'v2-1'] },
    { name: 'rollback to v1: ready v2 keeps serving until v1 is back', input: { targetVersion: 1, maxSurge: 2 }, observed: fleet('1R', '2R'), launch: 1, remove: [], trafficIds: ['v1-0', 'v2-1'] },
  ];

  test.each(cases)('$name', ({ input, observed, launch, remove, trafficIds, done }) => {
    const step = planStep({ ...base, ...input, observed });
    expect(step.launch).toBe(launch);
    expect(step.remove).toEqual(remove);
    expect(step.traffic.map((t) => t.replicaId).sort()).toEqual([...trafficIds].sort());
    expect(step.done).toBe(done ?? false);
    expect(step.note.length).toBeGreaterThan(0);
  });

  test.each([
    ['a rollback names the new version it removes, not "old"', { targetVersion: 1, maxSurge: 2 }, fleet('1R', '2R', '2S'), 'removing 1 v2 replica(s) that are not ready (they serve nothing); launching 1 v1 replica(s)'],
    ['a rolling step names the version it replaces', {}, fleet('1R', '1R', '2R'), 'removing 1 v1 replica(s) replaced by ready v2'],
  ] as const)('note: %s', (_name, input, observed, note) => {
    expect(planStep({ ...base, ...input, observed }).note).toBe(note);
  });

  test('the note says why a GPU-blocked rollout cannot move', () => {
    const step = planStep({ ...base, gpu: { free: 0, perReplica: 1 }, observed: fleet('1R', '1R') });
    expect(step.note).toMatch(/not enough free GPUs.*max_unavailable/);
  });
});

describe('trafficPercentByVersion', () => {
  test.each([
    [[], {}],
    [[{ replicaId: 'a', version: 1, weight: 1 }], { '1': 100 }],
    [[{ replicaId: 'a', version: 1, weight: 1 }, { replicaId: 'b', version: 2, weight: 1 }], { '1': 50, '2': 50 }],
    [[{ replicaId: 'a', version: 1, weight: 1 }, { replicaId: 'b', version: 2, weight: 2 }], { '1': 33, '2': 67 }],
    [[{ replicaId: 'a', version: 1, weight: 1 }, { replicaId: 'b', version: 2, weight: 1 }, { replicaId: 'c', version: 3, weight: 1 }], { '1': 34, '2': 33, '3': 33 }],
    [[{ replicaId: 'a', version: 1, weight: 0 }, { replicaId: 'b', version: 2, weight: 1 }], { '2': 100 }],
  ])('%j → %j', (traffic, expected) => {
    expect(trafficPercentByVersion(traffic)).toEqual(expected);
  });
});
