/** Inputs and outputs of the activities, shared with the workflows (which import types only). */
import type { StatsSnapshot } from '../plan/analysis';
import type { Backend, TrafficOrder } from '../router/types';
import type { ReadinessProbeSpec, ServiceSpec } from '../spec/types';

export interface LaunchReplicaInput {
  replicaId: string;
  service: string;
  version: number;
  spec: ServiceSpec;
}

export interface LaunchReplicaResult {
  replicaId: string;
  endpoint: string;
  gpuIds: number[];
}

export interface WaitReplicaReadyInput {
  replicaId: string;
  provider: string;
  endpoint: string;
  probe: ReadinessProbeSpec;
  /** Epoch ms: not ready by then = failed. Fixed by the workflow, so a retry keeps it. */
  deadline: number;
  /** Probes besides the schedule, at these times after the wait began (ms): when it is expected ready. */
  extraProbesAtMs?: number[];
}

/** When the replica was seen ready, and last seen not ready, after the wait began (ms): bounds of its load time. */
export interface ReadinessTiming {
  readyAtMs: number;
  notReadyAtMs?: number;
}

export interface WatchReplicaInput {
  replicaId: string;
  provider: string;
  endpoint: string;
  probe: ReadinessProbeSpec;
}

export interface SetTrafficInput {
  service: string;
  backends: Backend[];
  /** A rollout's changes are ordered: the router keeps only its newest (see TrafficOrder). */
  order?: TrafficOrder;
}

export interface SetTrafficResult {
  /** The service's stable URL through the router. */
  endpoint: string;
}

export interface DrainReplicaInput {
  service: string;
  replicaId: string;
  timeoutMs: number;
}

export interface TerminateReplicaInput {
  replicaId: string;
  provider: string;
}

export interface GpuCapacityInput {
  provider: string;
}

/** `totalGpus` null: GPUs do not limit launches on this provider (e.g. local CPU mode). */
export interface GpuCapacityResult {
  totalGpus: number | null;
}

export interface ReadTrafficStatsInput {
  service: string;
}

/** The service's cumulative counters per version since the router started (keys: versions). */
export type ReadTrafficStatsResult = StatsSnapshot;

/** Failure types raised by activities (ApplicationFailure.type). */
export const FailureTypes = {
  replicaNotReady: 'ReplicaNotReady',
  replicaDied: 'ReplicaDied',
  replicaUnhealthy: 'ReplicaUnhealthy',
  invalidRequest: 'InvalidRequest',
  credentials: 'CredentialsError',
  capacity: 'CapacityError',
  providerNotConfigured: 'ProviderNotConfigured',
} as const;

/** A replica to take out of service while another starts: drained first when it was serving. */
export interface RetireReplica {
  replicaId: string;
  provider: string;
  /** It was READY (it may have requests in flight): wait for the router to drain it first. */
  drain: boolean;
}

/**
 * One activity for a replica's start (launch, then wait until ready) and, alongside it, the
 * retirement of the replicas its step removed (drain, terminate): a rollout step costs one
 * activity and one workflow task instead of five of each.
 */
export interface StartReplicaInput extends LaunchReplicaInput {
  probe: ReadinessProbeSpec;
  /** Epoch ms: not ready by then = failed. Fixed by the workflow, so a retry keeps it. */
  deadline: number;
  retire: RetireReplica[];
  drainTimeoutMs: number;
  /** See WaitReplicaReadyInput.extraProbesAtMs: from the load time its version's earlier replicas took. */
  extraProbesAtMs?: number[];
  /**
   * The step's traffic change, carried: set first (before any retirement drains), so that a
   * step costs one activity instead of a traffic call and a start. Ordered, so a retry or a
   * late attempt never undoes a newer change.
   */
  traffic?: SetTrafficInput;
}

/** startReplica's answer: the new replica, and the carried traffic change's result. */
export interface StartReplicaResult extends LaunchReplicaResult {
  traffic?: SetTrafficResult;
  /** Bounds of its load time, for its version's next replicas (absent from an older worker). */
  readiness?: ReadinessTiming;
}

/** The details of a startReplica failure that came from retiring, not from the new replica. */
export interface RetireFailureDetails {
  retiring: true;
}

export interface RetireReplicasInput {
  service: string;
  retire: RetireReplica[];
  drainTimeoutMs: number;
  /** The step's traffic change, carried and set first (see StartReplicaInput.traffic). */
  traffic?: SetTrafficInput;
}

export interface RetireReplicasResult {
  traffic?: SetTrafficResult;
}
