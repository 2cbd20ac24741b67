/**
 * The rollout planner: given the spec's limits and the replicas as observed, the next step.
 * Pure: no I/O, no clock. The workflow carries a step out (traffic first, then removals,
 * then launches) and asks again whenever a replica changes state.
 *
 * Rules, in order (N = replicas, target = the version to converge to, old = any other):
 *  1. FAILED replicas are removed. Old replicas that are not READY serve nothing: removed.
 *  2. Target replicas above N are removed (not-ready first): a replica-count decrease.
 *  3. Rolling: an old READY replica is removed once a READY target replica replaces it —
 *     `oldReady - max(0, N - targetReady)` of them. Blue-green: every old replica is removed
 *     in the step where all N target replicas are READY (traffic flips in the same step).
 *  4. Launch `min(N - target, N + surge - occupied, free GPUs / GPUs per replica)` target
 *     replicas; occupied = live + those on their way out (FAILED, SHUTTING_DOWN), or with
 *     `leavingFreesRoom` only the live replicas that stay (this step's removals and those
 *     being terminated take no room; their GPUs still do, through `gpu.free`).
 *     Blue-green's surge is N (the whole new fleet at once).
 *  5. Surge first, unavailability second: only when no launch is possible (no room, no GPUs),
 *     no target replica is loading and nothing else is being removed, remove up to
 *     `serving - (N - maxUnavailable)` more old READY replicas to make room (blue-green counts
 *     only the old version as serving before the flip).
 *  6. Traffic: weight 1 on every READY replica that stays, so each version gets traffic in
 *     proportion to its READY replicas. Blue-green: only the old version until the flip.
 *  7. Done when exactly N target replicas are READY and nothing else is left.
 *
 * Worked examples (rolling, N 2, surge 1, unavailable 0; "1R" = a READY v1 replica):
 *   1R 1R               → launch 1                      (3 live ≤ N + surge)
 *   1R 1R 2S            → wait (2S is STARTING)
 *   1R 1R 2R            → remove one 1R; traffic 1R 2R; then launch 1
 *   1R 2R 2S            → wait
 *   1R 2R 2R            → remove 1R; traffic 2R 2R      → then done
 * With leavingFreesRoom the replacement and the next launch go together:
 *   1R 1R 2R            → remove one 1R; traffic 1R 2R; launch 1 (in the same step)
 * GPU-limited (N 2, surge 1, unavailable 1, 2 GPUs, 1 per replica, both held by v1):
 *   1R 1R               → launch blocked by GPUs → remove one 1R (budget 1); traffic on the other
 *   1R                  → launch 1 …
 * Rolling back is planning with the old version as the target: new replicas become "old".
 */
import { resolveLimits } from './limits';
import type { ObservedReplica, PlanInput, PlanStep, TrafficWeight } from './types';

const LIVE = new Set(['PROVISIONING', 'STARTING', 'READY', 'NOT_READY']);
const LOADING = new Set(['PROVISIONING', 'STARTING']);

const byId = (a: ObservedReplica, b: ObservedReplica): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const notReadyFirst = (a: ObservedReplica, b: ObservedReplica): number =>
  Number(a.status === 'READY') - Number(b.status === 'READY') || byId(a, b);

export function planStep(input: PlanInput): PlanStep {
  const n = input.replicas;
  const t = input.targetVersion;
  const blueGreen = input.strategy === 'blue_green';
  const limits = resolveLimits(n, input.maxSurge, input.maxUnavailable);
  const surge = blueGreen ? Math.max(n, limits.maxSurge) : limits.maxSurge;

  const observed = [...input.observed].sort(byId);
  const live = observed.filter((r) => LIVE.has(r.status));
  // Replicas on their way out still hold a process (and GPUs) until terminated.
  const shuttingDown = observed.filter((r) => r.status === 'SHUTTING_DOWN' || r.status === 'FAILED');
  const target = live.filter((r) => r.version === t);
  const old = live.filter((r) => r.version !== t);
  const oldReady = old.filter((r) => r.status === 'READY');

  // 1. Cleanup: failed replicas, and old ones that serve nothing.
  const failed = observed.filter((r) => r.status === 'FAILED');
  const oldIdle = old.filter((r) => r.status !== 'READY');
  // 2. Replica-count decrease.
  const excessTarget = [...target].sort(notReadyFirst).slice(0, Math.max(0, target.length - n));
  const keptTarget = target.filter((r) => !excessTarget.includes(r));
  const keptTargetReady = keptTarget.filter((r) => r.status === 'READY');
  // 3. Old replicas whose replacement is ready.
  const supersededCount = blueGreen
    ? keptTargetReady.length >= n
      ? oldReady.length
      : 0
    : Math.max(0, oldReady.length - Math.max(0, n - keptTargetReady.length));
  const superseded = oldReady.slice(0, supersededCount);
  const oldReadyLeft = oldReady.slice(supersededCount);

  // 4. Launches, bounded by total capacity and free GPUs. Capacity freed by this step's
  // removals counts at once with `leavingFreesRoom`, else only once they are really gone.
  const want = Math.max(0, n - keptTarget.length);
  const leavingNow = oldIdle.length + excessTarget.length + superseded.length;
  const room = n + surge - (input.leavingFreesRoom ? live.length - leavingNow : live.length + shuttingDown.length);
  const gpuRoom = input.gpu && input.gpu.perReplica > 0 ? Math.floor(input.gpu.free / input.gpu.perReplica) : Infinity;
  const launch = Math.max(0, Math.min(want, room, gpuRoom));

  // 5. Unavailability budget, used only when nothing else can make progress.
  const removingAlready = failed.length + oldIdle.length + excessTarget.length + superseded.length;
  const loading = keptTarget.some((r) => LOADING.has(r.status));
  let budgetRemovals: ObservedReplica[] = [];
  if (launch === 0 && want > 0 && !loading && removingAlready === 0) {
    // Blue-green: new replicas serve nothing before the flip, so only old ones count.
    const serving = blueGreen ? oldReadyLeft.length : oldReadyLeft.length + keptTargetReady.length;
    const budget = serving - (n - limits.maxUnavailable);
    budgetRemovals = oldReadyLeft.slice(0, Math.max(0, Math.min(want, budget)));
  }

  const remove = [...failed, ...oldIdle, ...excessTarget, ...superseded, ...budgetRemovals];
  const removed = new Set(remove.map((r) => r.id));

  // 6. Traffic on READY replicas that stay.
  const servingOld = oldReady.filter((r) => !removed.has(r.id));
  const servingTarget = keptTargetReady;
  // Blue-green: one side serves. Before the flip that is the old side, unless the old side
  // cannot have been the one serving (too few ready and fewer than the target): that is a
  // blue-green rollback interrupted before its flip, where the "target" is the serving side.
  const oldCannotServe =
    servingOld.length === 0 || (servingOld.length < n - limits.maxUnavailable && servingOld.length < servingTarget.length);
  const serving = blueGreen ? (oldCannotServe ? servingTarget : servingOld) : [...servingOld, ...servingTarget];
  const traffic: TrafficWeight[] = serving
    .map((r) => ({ replicaId: r.id, version: r.version, weight: 1 }))
    .sort((a, b) => a.version - b.version || (a.replicaId < b.replicaId ? -1 : 1));

  // 7. Done?
  const done =
    remove.length === 0 && launch === 0 && keptTarget.length === n && keptTargetReady.length === n && old.length === 0 && shuttingDown.length === 0;

  return { launch, remove: remove.map((r) => r.id), traffic, done, note: noteFor() };

  function noteFor(): string {
    if (done) return `done: ${n} v${t} replica(s) ready`;
    const parts: string[] = [];
    if (failed.length) parts.push(`removing ${failed.length} failed replica(s)`);
    // Versions by number: while rolling back, the "other" replicas are the *new* version's.
    if (oldIdle.length) parts.push(`removing ${oldIdle.length} ${versionsOf(oldIdle)} replica(s) that are not ready (they serve nothing)`);
    if (excessTarget.length) parts.push(`scaling down ${excessTarget.length} v${t} replica(s)`);
    if (superseded.length) parts.push(`removing ${superseded.length} ${versionsOf(superseded)} replica(s) replaced by ready v${t}`);
    if (budgetRemovals.length) {
      const why = gpuRoom < Math.min(want, room) ? `GPUs (${input.gpu?.free} free, ${input.gpu?.perReplica} per replica)` : 'surge room';
      parts.push(`blocked by ${why}: removing ${budgetRemovals.length} ${versionsOf(budgetRemovals)} replica(s) within max_unavailable`);
    }
    if (launch) parts.push(`launching ${launch} v${t} replica(s)`);
    const loadingCount = keptTarget.filter((r) => LOADING.has(r.status)).length;
    if (loadingCount) parts.push(`waiting for ${loadingCount} v${t} replica(s) to become ready`);
    if (parts.length === 0 && launch < want) {
      const why = gpuRoom < Math.min(want, room) ? `not enough free GPUs (${input.gpu?.free} free, ${input.gpu?.perReplica} per replica)` : 'no surge room';
      parts.push(`blocked: ${why} and max_unavailable allows no ready replica to go`);
    }
    return parts.join('; ') || 'waiting';
  }
}

/** "v1", or "v1/v3" when removals span versions. */
function versionsOf(replicas: ObservedReplica[]): string {
  return [...new Set(replicas.map((r) => r.version))].sort((a, b) => a - b).map((v) => `v${v}`).join('/');
}
