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

/**
 * The wait between two rounds of a watch: the probe period, cut short when the provider hears
 * that one of `replicaIds` stopped since `since` (a process exit is seen at once, not at the next
 * probe; the next round then finds it gone), or when `signal` aborts.
 */
async function untilNextRound(provider: Provider, replicaIds: string[], since: number, ms: number, signal: AbortSignal): Promise<void> {
  if (!provider.whenAnyStops || replicaIds.length === 0) return pause(ms, signal);
  // Whichever ends first ends the other: aborting `round` clears the timer and the provider's listener.
  const round = new AbortController();
  const onAbort = (): void => round.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.race([pause(ms, round.signal), provider.whenAnyStops(replicaIds, since, round.signal)]);
  } finally {
    signal.removeEventListener('abort', onAbort);
    round.abort();
  }
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
    const roundStart = Date.now();
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
    await untilNextRound(provider, [input.replicaId], roundStart, input.probe.period_seconds * 1000, signal);
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
  /**
   * Also watch every replica the router routes for the service (weight above 0) that is not
   * listed, at its backend URL, with its version's probe (`probes`, by version; else `probe`):
   * a batched rollout's one watch covers the replicas it brings up as they get traffic, with
   * no activity per replica. Implies onlyWhileRouted.
   */
  routed?: { probes: Record<string, ReadinessProbeSpec> };
}

/** A backend as the router routes it. */
export interface RoutedBackend {
  replicaId: string;
  version: number;
  url: string;
  weight: number;
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
  routedBackends?: () => Promise<RoutedBackend[]>,
): Promise<{ lost: LostReplica[] }> {
  const until = Date.now() + input.maxWatchMs;
  while (!signal.aborted && Date.now() < until) {
    const roundStart = Date.now();
    const watched = await watchedNow(input, routedBackends);
    const judged = await Promise.all(
      watched.map(async (r) => ({ r, j: judgeReplica(failures[r.replicaId] ?? 0, await observe(provider, r.replicaId, r.endpoint, r.probe), r.probe.failure_threshold) })),
    );
    for (const { r, j } of judged) failures[r.replicaId] = j.failures;
    const lost = judged.filter(({ j }) => j.lost).map(({ r, j }) => ({ replicaId: r.replicaId, reason: `replica ${r.replicaId} ${j.lost}` }));
    if (lost.length > 0) return { lost };
    await untilNextRound(provider, watched.map((r) => r.replicaId), roundStart, input.probe.period_seconds * 1000, signal);
  }
  return { lost: [] };
}

/** The replicas to probe this round: the listed ones (only while routed, if asked), and with `routed` the router's others. */
async function watchedNow(input: FleetWatchInput, routedBackends?: () => Promise<RoutedBackend[]>): Promise<{ replicaId: string; endpoint: string; probe: ReadinessProbeSpec }[]> {
  const listed = input.replicas.map((r) => ({ ...r, probe: input.probe }));
  if (!(input.onlyWhileRouted || input.routed) || !routedBackends) return listed;
  const backends = (await routedBackends()).filter((b) => b.weight > 0);
  const routedIds = new Set(backends.map((b) => b.replicaId));
  const kept = listed.filter((r) => routedIds.has(r.replicaId));
  if (!input.routed) return kept;
  const listedIds = new Set(listed.map((r) => r.replicaId));
  const probes = input.routed.probes;
  const others = backends.filter((b) => !listedIds.has(b.replicaId)).map((b) => ({ replicaId: b.replicaId, endpoint: b.url, probe: probes[String(b.version)] ?? input.probe }));
  return [...kept, ...others];
}
