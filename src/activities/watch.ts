/**
 * Watching READY replicas: each must keep running and its readiness probe must not fail
 * `failure_threshold` times in a row (judgeReplica, src/plan/healing.ts, decides).
 *  - watchUntilUnhealthy: one replica a rollout launched; returns only by throwing (or when cancelled).
 *  - watchFleetUntilLost: every serving replica of a service in one activity (not one per
 *    replica), returning the ones lost, or nothing after `maxWatchMs` so the workflow can re-arm it.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { judgeReplica, type LostReplica } from '../plan/healing';
import { ProviderError, type Provider, type ReplicaDescription } from '../providers/types';
import { probeOnce } from '../providers/readiness';
import type { ReadinessProbeSpec } from '../spec/types';
import type { WatchReplicaInput } from './types';
import { FailureTypes } from './types';

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    // One listener per period, removed when the period ends (otherwise they pile up on the signal).
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function observe(provider: Provider, replicaId: string, endpoint: string, probe: ReadinessProbeSpec) {
  let described: ReplicaDescription | undefined;
  try {
    described = await provider.describe(replicaId);
  } catch (err) {
    // A transient provider error (throttling) says nothing about the replica, and its probe still
    // can: judged on the probe alone this round (a dead one fails it too). Throwing would drop the
    // round's observations of every replica and fail the watch attempt, whose retries back off to
    // 30 s: a flaky provider would leave the watch all but blind.
    if (!(err instanceof ProviderError && err.retryable)) throw err;
  }
  if (described && described.state !== 'running') return { running: false, exitInfo: described.exitInfo ?? described.state, probeOk: false };
  const answer = await probeOnce(endpoint + probe.path, probe.timeout_seconds * 1000);
  return { running: true, probeOk: answer.ok, probeDetail: answer.status !== undefined ? `HTTP ${answer.status}` : answer.error };
}

export async function watchUntilUnhealthy(
  provider: Provider,
  input: WatchReplicaInput,
  signal: AbortSignal,
  onFailures: (consecutive: number) => void,
): Promise<void> {
  let failures = 0;
  while (!signal.aborted) {
    const seen = await observe(provider, input.replicaId, input.endpoint, input.probe);
    const judged = judgeReplica(failures, seen, input.probe.failure_threshold);
    failures = judged.failures;
    if (judged.lost) {
      throw ApplicationFailure.create({
        type: seen.running ? FailureTypes.replicaUnhealthy : FailureTypes.replicaDied,
        message: `replica ${input.replicaId} ${judged.lost}`,
        nonRetryable: true,
      });
    }
    onFailures(failures);
    await pause(input.probe.period_seconds * 1000, signal);
  }
  // Cancelled: the rollout is done with this replica.
}

export interface FleetWatchInput {
  service: string;
  provider: string;
  replicas: { replicaId: string; endpoint: string }[];
  probe: ReadinessProbeSpec;
  /** Return `{lost: []}` after this long, so that the workflow's history and state stay current. */
  maxWatchMs: number;
  /**
   * Watch a replica only while the router routes it (a rollout's inherited replicas): one the
   * rollout took out of traffic is leaving, and its end is no loss to report (reporting it would
   * cost the workflow a re-armed watch per replaced replica).
   */
  onlyWhileRouted?: boolean;
}

/**
 * Probes every replica each period until at least one is lost; returns all lost in that round.
 * `failures` (consecutive failed probes per replica) comes from the last attempt's heartbeat, so
 * a worker crash does not reset the count; it is updated in place (the caller heartbeats it).
 */
export async function watchFleetUntilLost(
  provider: Provider,
  input: FleetWatchInput,
  signal: AbortSignal,
  failures: Record<string, number>,
  routedIds?: () => Promise<Set<string>>,
): Promise<{ lost: LostReplica[] }> {
  const until = Date.now() + input.maxWatchMs;
  while (!signal.aborted && Date.now() < until) {
    const routed = input.onlyWhileRouted && routedIds ? await routedIds() : undefined;
    const watched = routed ? input.replicas.filter((r) => routed.has(r.replicaId)) : input.replicas;
    const judged = await Promise.all(
      watched.map(async (r) => ({ r, j: judgeReplica(failures[r.replicaId] ?? 0, await observe(provider, r.replicaId, r.endpoint, input.probe), input.probe.failure_threshold) })),
    );
    for (const { r, j } of judged) failures[r.replicaId] = j.failures;
    const lost = judged.filter(({ j }) => j.lost).map(({ r, j }) => ({ replicaId: r.replicaId, reason: `replica ${r.replicaId} ${j.lost}` }));
    if (lost.length > 0) return { lost };
    await pause(input.probe.period_seconds * 1000, signal);
  }
  return { lost: [] };
}
