/**
 * Watching serving replicas from a workflow (self-healing): one `watchFleet` activity over all
 * of them, not one per replica, for at most WATCH_WINDOW_MS at a time, so history grows by a few
 * events an hour however many replicas there are. Workflow code: deterministic, no I/O.
 */
import { CancellationScope, condition, proxyActivities } from '@temporalio/workflow';
import type { Duration } from '@temporalio/common';
import type { createActivities } from '../activities';
import { HEARTBEAT_TIMEOUT, IDLE_WATCH_HEARTBEAT_TIMEOUT } from './heartbeat-timeout';
import type { LostReplica } from '../plan/healing';
import type { ReadinessProbeSpec } from '../spec/types';

/** How long one watch runs before the workflow re-arms it (and may continue as new). */
export const WATCH_WINDOW_MS = 60 * 60_000;

function watchActivity(heartbeatTimeout: Duration) {
  return proxyActivities<ReturnType<typeof createActivities>>({
    startToCloseTimeout: WATCH_WINDOW_MS + 5 * 60_000,
    heartbeatTimeout,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', nonRetryableErrorTypes: ['ProviderNotConfigured'] },
  }).watchFleet;
}
/** A rollout's watch: its interrupts come at every step, and a cancelled watch stops at its next heartbeat. */
const watchFleet = watchActivity(HEARTBEAT_TIMEOUT);
/** A service's watch between rollouts, for hours on end (see IDLE_WATCH_HEARTBEAT_TIMEOUT). */
const watchIdleFleet = watchActivity(IDLE_WATCH_HEARTBEAT_TIMEOUT);

export interface ServingWatch {
  service: string;
  provider: string;
  probe: ReadinessProbeSpec;
  replicas: { replicaId: string; endpoint: string }[];
  /** Stop watching (a rollout takes over, or the workflow continues as new). */
  interrupt: () => boolean;
  /** Between rollouts (self-healing): heartbeats seldom, see IDLE_WATCH_HEARTBEAT_TIMEOUT. */
  idle?: boolean;
  /** Only while the router routes them (see FleetWatchInput). */
  onlyWhileRouted?: boolean;
  /** Also every other replica the router routes for the service, with its version's probe (see FleetWatchInput). */
  routed?: { probes: Record<string, ReadinessProbeSpec> };
}


/** The replicas lost within one window; [] when the window ended or `interrupt()` came first. */
export async function watchServing(w: ServingWatch): Promise<LostReplica[]> {
  const startedAt = Date.now();
  if (w.replicas.length === 0 && !w.routed) {
    await condition(w.interrupt, WATCH_WINDOW_MS);
    return [];
  }
  const scope = new CancellationScope();
  try {
    return await scope.run(async () => {
      const watching = (w.idle ? watchIdleFleet : watchFleet).executeWithOptions({ summary: `watch ${w.replicas.length} serving replica(s) of ${w.service}` }, [
        { service: w.service, provider: w.provider, probe: w.probe, replicas: w.replicas, maxWatchMs: WATCH_WINDOW_MS, ...(w.onlyWhileRouted ? { onlyWhileRouted: true } : {}), ...(w.routed ? { routed: w.routed } : {}) },
      ]);
      const first = await Promise.race([watching.then((r) => r.lost), condition(w.interrupt).then(() => 'interrupted' as const)]);
      if (first === 'interrupted') return [];
      if (first.length > 0) return first;
      // The watch ended before its window did (cut short): wait out the rest before re-arming.
      const rest = startedAt + WATCH_WINDOW_MS - Date.now();
      if (rest > 0) await condition(w.interrupt, rest);
      return [];
    });
  } finally {
    // Whatever is still pending (the activity, or the wait for `interrupt`) is no longer needed.
    scope.cancel();
  }
}
