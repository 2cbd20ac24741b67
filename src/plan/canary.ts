/**
 * The traffic-led planner: canary steps, a manually held percent, and constrained surge.
 * Pure: no I/O, no clock. Where `planStep` (planner.ts) replaces replicas and lets traffic
 * follow them, this one is led by a traffic weight and moves capacity to match it:
 * launch canary capacity, shift traffic onto what is READY, remove primary capacity that
 * no longer carries traffic, repeat.
 *
 * Capacity is counted in percent of each version's steady state (one canary replica of 4 is
 * 25%). The surge room is surgePercent, but at least one replica of each version less
 * 100%/lcm(Nc, Np): that is one replica when Nc = Np, and what a change of the replica count
 * needs to move at all (Np 3 → Nc 4 at weight 30 needs 2 canaries (50%) beside 3 primaries
 * (100%), 150%; with 25% it would wait forever). Invariants, after every step:
 *  - total capacity (live and shutting-down replicas of both versions) ≤ 100% + that room;
 *  - each version's traffic ≤ its READY capacity (while the two together have ≥ 100%);
 *  - until 100%, at least one replica of each version (canary replicas round up);
 *  - rolling back, the primary is brought back up *before* traffic moves onto it.
 *
 * Rules (c = the canary's traffic after this step, w = the weight to reach):
 *  1. FAILED replicas are removed.
 *  2. c = w clamped to [100 − primary READY capacity, canary READY capacity]; when the two
 *     READY capacities sum below 100 (replicas lost), traffic follows capacity instead.
 *  3. Wanted replicas: canary max(1, ⌈w·Nc/100⌉) (Nc at 100%, 0 when rolling back);
 *     primary max(1, ⌈(100−w)·Np/100⌉) (0 at 100%, Np when rolling back).
 *  4. A version keeps max(wanted, READY replicas needed for its traffic c); the rest go,
 *     not-ready first.
 *  5. Launches fill the missing wanted replicas within the surge room and free GPUs; the
 *     version traffic is moving to launches first (the primary when w < c).
 *  6. Reached when c = w, both versions have exactly their wanted replicas, all READY, and
 *     nothing is shutting down. Done when reached at 100% (or at 0% rolling back).
 *
 * Worked examples (Np = Nc = 4; "P" primary READY, "C" canary READY, "c" canary loading):
 *   w 10, surge 25%:  PPPP        → launch 1 canary                     (125%)
 *                     PPPP c      → wait
 *                     PPPP C      → traffic C 10%                       → reached
 *   w 50, surge 25%:  PPPP C      → traffic C 25%; remove 1 P (P 75% carries 75%)
 *                     PPP C       → launch 1 canary
 *                     PPP CC      → traffic C 50%; remove 1 P           → then reached
 *   rollback from PP CC (50%), surge 25%:
 *                     PP CC       → launch 1 primary (room 25%)
 *                     PPP CC      → traffic C 25%; remove 1 C
 *                     PPP C       → launch 1 primary
 *                     PPPP C      → traffic C 0%; remove 1 C            → then done
 */
import type { CanaryPlanInput, CanaryPlanStep, ObservedReplica, TrafficWeight } from './types';

const EPSILON = 1e-9;
const LIVE = new Set(['PROVISIONING', 'STARTING', 'READY', 'NOT_READY']);

const byId = (a: ObservedReplica, b: ObservedReplica): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const notReadyFirst = (a: ObservedReplica, b: ObservedReplica): number =>
  Number(a.status === 'READY') - Number(b.status === 'READY') || byId(a, b);
/** Replicas needed to carry `percent` of traffic when `n` make 100%. */
const replicasFor = (percent: number, n: number): number => Math.max(0, Math.ceil((percent * n) / 100 - EPSILON));
const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const lcm = (a: number, b: number): number => (a / gcd(a, b)) * b;

export function planCanaryStep(input: CanaryPlanInput): CanaryPlanStep {
  const { canary, primary, rollingBack } = input;
  const w = rollingBack ? 0 : clamp(input.weight, 0, 100);
  const nc = canary.replicas;
  const np = primary.replicas;
  const unitC = 100 / nc;
  const unitP = 100 / np;
  const surge = Math.max(input.surgePercent, unitC + unitP - 100 / lcm(nc, np));

  const observed = [...input.observed].sort(byId);
  const failed = observed.filter((r) => r.status === 'FAILED');
  const shuttingDown = observed.filter((r) => r.status === 'SHUTTING_DOWN' || r.status === 'FAILED');
  const live = observed.filter((r) => LIVE.has(r.status));
  const liveC = live.filter((r) => r.version === canary.version);
  const liveP = live.filter((r) => r.version !== canary.version);
  const readyC = liveC.filter((r) => r.status === 'READY');
  const readyP = liveP.filter((r) => r.status === 'READY');

  // 2. The canary's traffic after this step.
  const capC = Math.min(100, readyC.length * unitC);
  const capP = Math.min(100, readyP.length * unitP);
  let c: number;
  if (capC + capP >= 100 - EPSILON) c = clamp(w, 100 - capP, capC);
  else c = capC + capP > 0 ? (100 * capC) / (capC + capP) : 0;
  if (Math.abs(c - w) < EPSILON) c = w;

  // 3–4. Wanted replicas, and what each version keeps.
  const wantC = rollingBack ? 0 : w >= 100 ? nc : Math.max(1, replicasFor(w, nc));
  const wantP = rollingBack ? np : w >= 100 ? 0 : Math.max(1, replicasFor(100 - w, np));
  const neededReadyC = replicasFor(c, nc);
  const neededReadyP = replicasFor(100 - c, np);
  const removeC = excess(liveC, wantC, neededReadyC);
  const removeP = excess(liveP, wantP, neededReadyP);
  const remove = [...failed, ...removeP, ...removeC];
  const removed = new Set(remove.map((r) => r.id));

  // 5. Launches within the surge room (what leaves in this step frees room only once gone).
  const occupied = [...live, ...shuttingDown].reduce((sum, r) => sum + (r.version === canary.version ? unitC : unitP), 0);
  let room = 100 + surge - occupied;
  let gpuFree = input.gpu ? input.gpu.free : Infinity;
  const fit = (missing: number, unit: number, gpusEach: number): number => {
    const byRoom = Math.floor((room + EPSILON) / unit);
    const byGpu = gpusEach > 0 ? Math.floor(gpuFree / gpusEach) : Infinity;
    const n = Math.max(0, Math.min(missing, byRoom, byGpu));
    room -= n * unit;
    gpuFree -= n * gpusEach;
    return n;
  };
  const missingC = Math.max(0, wantC - (liveC.length - removeC.length));
  const missingP = Math.max(0, wantP - (liveP.length - removeP.length));
  const gpuC = input.gpu?.perCanaryReplica ?? 0;
  const gpuP = input.gpu?.perPrimaryReplica ?? 0;
  let launch: number;
  let launchPrimary: number;
  if (rollingBack || w < c) {
    launchPrimary = fit(missingP, unitP, gpuP);
    launch = fit(missingC, unitC, gpuC);
  } else {
    launch = fit(missingC, unitC, gpuC);
    launchPrimary = fit(missingP, unitP, gpuP);
  }

  // Traffic: the canary's share spread over its READY replicas that stay, the rest over the primary's.
  const servingC = readyC.filter((r) => !removed.has(r.id));
  const servingP = readyP.filter((r) => !removed.has(r.id));
  const traffic: TrafficWeight[] = [
    ...servingP.map((r) => ({ replicaId: r.id, version: r.version, weight: (100 - c) / servingP.length })),
    ...servingC.map((r) => ({ replicaId: r.id, version: r.version, weight: c / servingC.length })),
  ]
    .filter((t) => t.weight > 0)
    .sort((a, b) => a.version - b.version || (a.replicaId < b.replicaId ? -1 : 1));

  // 6. Reached / done.
  const settled =
    remove.length === 0 &&
    launch === 0 &&
    launchPrimary === 0 &&
    shuttingDown.length === 0 &&
    liveC.length === wantC &&
    liveP.length === wantP &&
    readyC.length === wantC &&
    readyP.length === wantP;
  const reached = settled && c === w;
  const done = reached && (rollingBack ? c === 0 : w >= 100);

  return { launch, launchPrimary, remove: remove.map((r) => r.id), traffic, canaryPercent: c, reached, done, note: noteFor() };

  function noteFor(): string {
    const pct = (x: number): string => `${Math.round(x * 10) / 10}%`;
    if (done) return rollingBack ? `rolled back: v${primary.version} carries all traffic` : `done: ${nc} v${canary.version} replica(s) carry all traffic`;
    if (reached) return `holding at v${canary.version} ${pct(w)}`;
    const parts: string[] = [];
    if (failed.length) parts.push(`removing ${failed.length} failed replica(s)`);
    parts.push(`${rollingBack ? 'rolling back' : `moving to v${canary.version} ${pct(w)}`}: canary traffic ${pct(c)}`);
    if (removeP.length) parts.push(`removing ${removeP.length} v${primary.version} replica(s)`);
    if (removeC.length) parts.push(`removing ${removeC.length} v${canary.version} replica(s)`);
    if (launchPrimary) parts.push(`launching ${launchPrimary} v${primary.version} replica(s)`);
    if (launch) parts.push(`launching ${launch} v${canary.version} replica(s)`);
    const loading = live.filter((r) => r.status === 'PROVISIONING' || r.status === 'STARTING').length;
    if (loading) parts.push(`waiting for ${loading} replica(s) to become ready`);
    if (launch < missingC || launchPrimary < missingP) {
      parts.push(gpuFree < Infinity && room >= Math.min(unitC, unitP) - EPSILON ? 'more wait for free GPUs' : 'more wait for surge room');
    }
    return parts.join('; ');
  }
}

/**
 * The replicas of one version beyond what it keeps: `keep = max(wanted, neededReady)` live
 * replicas, not-ready ones leaving first, and never fewer than `neededReady` READY ones.
 */
function excess(live: ObservedReplica[], wanted: number, neededReady: number): ObservedReplica[] {
  const keep = Math.max(wanted, neededReady);
  const ordered = [...live].sort(notReadyFirst);
  const out: ObservedReplica[] = [];
  let ready = live.filter((r) => r.status === 'READY').length;
  for (const r of ordered) {
    if (live.length - out.length <= keep) break;
    if (r.status === 'READY') {
      if (ready - 1 < neededReady) continue;
      ready -= 1;
    }
    out.push(r);
  }
  return out;
}
