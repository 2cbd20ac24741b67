/**
 * Self-healing, the pure part (as SkyServe's replica manager): a replica's health judged from
 * raw observations, which replicas a repair must replace, and how long to wait before trying
 * again when replacements keep failing. No I/O, no clock.
 *
 * Worked examples (failure_threshold 3):
 *   running, probe 200                    → healthy, failures 0
 *   running, probe 503 (2 before)         → lost: "failed 3 readiness probes in a row (last: HTTP 503)"
 *   not running (exit code 137)           → lost at once: "stopped (exit code 137)"
 */

export interface ReplicaObservation {
  /** The provider's view: the process (instance) is there. */
  running: boolean;
  /** Why it is not running, as the provider says (exit code, log tail). */
  exitInfo?: string;
  /** The readiness probe answered 2xx. Ignored when not running. */
  probeOk: boolean;
  /** `HTTP 503`, `ECONNREFUSED`…, for the message. */
  probeDetail?: string;
}

export interface ReplicaJudgement {
  /** Consecutive failed probes so far. */
  failures: number;
  /** Set when the replica is lost: why, in one line. */
  lost?: string;
}

/** The next judgement of a READY replica from the last one and a new observation. */
export function judgeReplica(previousFailures: number, seen: ReplicaObservation, failureThreshold: number): ReplicaJudgement {
  if (!seen.running) return { failures: previousFailures, lost: `stopped (${seen.exitInfo ?? 'gone'})` };
  const failures = seen.probeOk ? 0 : previousFailures + 1;
  if (failures >= failureThreshold) return { failures, lost: `failed ${failures} readiness probes in a row (last: ${seen.probeDetail ?? 'no answer'})` };
  return { failures };
}

export interface LostReplica {
  replicaId: string;
  reason: string;
}

/**
 * The records with each lost replica marked FAILED and its reason kept (the planner then removes
 * it, takes it out of traffic and launches a replacement). Replicas that are no longer READY
 * (already being removed) are left as they are.
 */
export function markLost<T extends { id: string; status: string; message?: string }>(replicas: T[], lost: LostReplica[]): T[] {
  const why = new Map(lost.map((l) => [l.replicaId, l.reason]));
  return replicas.map((r) => (why.has(r.id) && r.status === 'READY' ? { ...r, status: 'FAILED', message: why.get(r.id) } : r));
}

/**
 * Wait before the next replacement after `consecutiveFailures` replacements failed in a row:
 * none for the first, then 10 s doubling to at most 5 minutes, so a version that cannot start
 * any more is retried patiently instead of in a tight loop.
 *   0 → 0, 1 → 10 s, 2 → 20 s, 3 → 40 s, … , ≥ 6 → 300 s
 */
export function healingBackoffMs(consecutiveFailures: number): number {
  if (consecutiveFailures <= 0) return 0;
  return Math.min(300_000, 10_000 * 2 ** (consecutiveFailures - 1));
}

/**
 * A service is whole when exactly `replicas` replicas serve, all READY and of the serving
 * version. Anything else (fewer after a loss, leftovers of a failed rollout) is healed.
 *   [1R, 1R] of v1 ×2 → whole;  [1R] → not;  [1R, 1F] → not;  [1R, 2R] → not (mixed)
 */
export function isWhole(replicas: { version: number; status: string }[], version: number, wanted: number): boolean {
  return replicas.length === wanted && replicas.every((r) => r.status === 'READY' && r.version === version);
}
