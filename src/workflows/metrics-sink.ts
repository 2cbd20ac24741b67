/**
 * The rollout's start and end, and each service's replica states (replica-states.ts), told to
 * the worker's metrics through a Temporal sink: workflow code can do no I/O, and a sink call adds no command to the history (old histories replay as
 * they ran). The worker registers it with `callDuringReplay: false`, so a replay (a worker
 * restart, a cache eviction) counts nothing twice; a worker without it logs the calls as
 * unregistered and carries on.
 */
import { proxySinks, type Sinks } from '@temporalio/workflow';
import type { ReplicaStatus } from '../plan/types';

export type RolloutStrategyLabel = 'rolling' | 'blue_green' | 'canary' | 'in_place';
export type RolloutOutcomeLabel = 'succeeded' | 'rolled_back' | 'failed' | 'cancelled';

/** One replica, as `rollout_replicas{provider,state}` counts it. */
export interface ReplicaStateReport {
  replicaId: string;
  provider: string;
  state: ReplicaStatus;
}

export interface RolloutMetricsSinks extends Sinks {
  rolloutMetrics: {
    /** A rollout's first run began (a run continued as new does not call it). */
    started(strategy: RolloutStrategyLabel): void;
    /** The rollout ended, `durationSeconds` after its first run began (workflow time). */
    finished(strategy: RolloutStrategyLabel, outcome: RolloutOutcomeLabel, durationSeconds: number): void;
    /**
     * The replicas of `service` that the calling workflow owns now: replaces the service's last
     * report. [] = the caller owns none any more (only the workflow that made the last report can clear it).
     */
    replicaStates(service: string, replicas: ReplicaStateReport[]): void;
  };
}

export const { rolloutMetrics } = proxySinks<RolloutMetricsSinks>();
