/** The worker's side of the workflows' metrics sink (src/workflows/metrics-sink.ts). */
import type { InjectedSinks } from '@temporalio/worker';
import type { RolloutMetricsSinks } from '../workflows/metrics-sink';
import type { WorkerMetrics } from './metrics';

/** Runs remembered, to count each once: far more than the rollouts one worker sees between restarts. */
const REMEMBERED_RUNS = 10_000;

/**
 * `callDuringReplay: false`: a replayed history (a restarted worker, an evicted cache, the
 * replay tests) re-runs the calls, and they must not count again. That is not all: a workflow
 * task whose completion the server refused (an activity result or a signal came in meanwhile)
 * is run again *not* replaying, and calls the sink a second time (seen on the dev server: a
 * rollout counted finished twice). So each run is counted once per event here too.
 * Without `metrics` (workflow tests, replays) the calls are accepted and dropped, so the SDK
 * logs no "unregistered sink".
 */
export function rolloutMetricsSinks(metrics?: WorkerMetrics): InjectedSinks<RolloutMetricsSinks> {
  const seen = new Set<string>();
  const first = (key: string): boolean => {
    if (seen.has(key)) return false;
    seen.add(key);
    // A Set iterates in insertion order: the oldest goes first.
    if (seen.size > REMEMBERED_RUNS) seen.delete(seen.values().next().value as string);
    return true;
  };
  return {
    rolloutMetrics: {
      started: {
        fn: (info, strategy) => {
          if (first(`started ${info.runId}`)) metrics?.rolloutStarted(strategy);
        },
        callDuringReplay: false,
      },
      finished: {
        fn: (info, strategy, outcome, durationSeconds) => {
          if (first(`finished ${info.runId}`)) metrics?.rolloutFinished(strategy, outcome, durationSeconds);
        },
        callDuringReplay: false,
      },
      // The latest report wins (a refused task run again sends the same or a newer state): no dedup needed.
      replicaStates: {
        fn: (info, service, replicas) => metrics?.replicaStatesReported(info.workflowId, service, replicas),
        callDuringReplay: false,
      },
    },
  };
}
