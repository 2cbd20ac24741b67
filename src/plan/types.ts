/**
 * Inputs and outputs of the pure rollout planner. No I/O, no clock, no Temporal.
 */
import type { RolloutStrategy, Quantity } from '../spec/types';

/** SkyServe-like replica states. Only READY replicas receive traffic. */
export type ReplicaStatus =
  | 'PROVISIONING' // launch requested, process/instance not up yet
  | 'STARTING' // running, readiness probe not passed yet
  | 'READY' // probe passed, may serve traffic
  | 'NOT_READY' // was ready, probe now failing
  | 'SHUTTING_DOWN' // out of traffic, draining / terminating
  | 'FAILED' // never became ready in time, or its process died
  | 'TERMINATED'; // gone

/** What the planner needs to know about one replica. */
export interface ObservedReplica {
  id: string;
  version: number;
  status: ReplicaStatus;
}

export interface PlanInput {
  strategy: RolloutStrategy;
  /** Desired number of replicas of the target version. */
  replicas: number;
  maxSurge: Quantity;
  maxUnavailable: Quantity;
  /** The version the fleet should converge to (the new one, or the old one when rolling back). */
  targetVersion: number;
  observed: ObservedReplica[];
  /**
   * GPU budget. `free` = GPUs not held by any live replica; `perReplica` = GPUs one
   * target-version replica needs. Absent, or perReplica 0: GPUs do not limit launches.
   */
  gpu?: { free: number; perReplica: number };
}

/** One traffic weight for one READY replica. */
export interface TrafficWeight {
  replicaId: string;
  version: number;
  weight: number;
}

/** The next thing to do: a value the workflow carries out (SkyServe's "decisions are data"). */
export interface PlanStep {
  /** How many new target-version replicas to launch now. */
  launch: number;
  /** Replicas to take out of traffic, drain and terminate now (FAILED ones included). */
  remove: string[];
  /** Weights to set for the replicas that receive traffic after this step (READY only). */
  traffic: TrafficWeight[];
  /** True when `replicas` target-version replicas are READY and nothing else is live. */
  done: boolean;
  /** Why, in a few words, for status and logs. */
  note: string;
}

/** Resolved surge/unavailable limits. */
export interface RolloutLimits {
  maxSurge: number;
  maxUnavailable: number;
}
