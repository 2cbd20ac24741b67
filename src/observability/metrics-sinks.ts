/** The worker's side of the workflows' metrics sink (src/workflows/metrics-sink.ts). */
import type { InjectedSinks } from '@temporalio/worker';
import type { RolloutMetricsSinks } from '../workflows/metrics-sink';
import type { WorkerMetrics } from './metrics';

/**
 * `callDuringReplay: false`: a replayed history (a restarted worker, an evicted cache, the
 * replay tests) re-runs the calls, and they must not count again. Without `metrics` (workflow
 * tests, replays) the calls are accepted and dropped, so the SDK logs no "unregistered sink".
 */
export function rolloutMetricsSinks(metrics?: WorkerMetrics): InjectedSinks<RolloutMetricsSinks> {
  return {
    rolloutMetrics: {
      started: { fn: (_info, strategy) => metrics?.rolloutStarted(strategy), callDuringReplay: false },
      finished: { fn: (_info, strategy, outcome, durationSeconds) => metrics?.rolloutFinished(strategy, outcome, durationSeconds), callDuringReplay: false },
    },
  };
}
