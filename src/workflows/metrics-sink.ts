/**
 * The rollout's start and end, told to the worker's metrics through a Temporal sink: workflow
 * code can do no I/O, and a sink call adds no command to the history (old histories replay as
 * they ran). The worker registers it with `callDuringReplay: false`, so a replay (a worker
 * restart, a cache eviction) counts nothing twice; a worker without it logs the calls as
 * unregistered and carries on.
 */
import { proxySinks, type Sinks } from '@temporalio/workflow';

export type RolloutStrategyLabel = 'rolling' | 'blue_green' | 'canary' | 'in_place';
export type RolloutOutcomeLabel = 'succeeded' | 'rolled_back' | 'failed' | 'cancelled';

export interface RolloutMetricsSinks extends Sinks {
  rolloutMetrics: {
    /** A rollout's first run began (a run continued as new does not call it). */
    started(strategy: RolloutStrategyLabel): void;
    /** The rollout ended, `durationSeconds` after its first run began (workflow time). */
    finished(strategy: RolloutStrategyLabel, outcome: RolloutOutcomeLabel, durationSeconds: number): void;
  };
}

export const { rolloutMetrics } = proxySinks<RolloutMetricsSinks>();
