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
  /**
   * Replicas on their way out (removed in this step, or being drained and terminated) free
   * their surge room at once, as Kubernetes does not count terminating pods against maxSurge:
   * the next launch need not wait for an old replica's termination. GPUs still bound launches
   * (`gpu.free` counts a replica's GPUs until it is terminated). Absent: they hold their room
   * until gone (rollouts started before this, which replay as they ran).
   */
  leavingFreesRoom?: boolean;
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

/**
 * Input of the traffic-led planner (canary steps, manual percent, constrained surge): the
 * canary is the new version, the primary the one that served when the rollout started.
 * Capacity is counted in percent of each version's steady state: one canary replica is
 * `100 / canary.replicas` percent.
 */
export interface CanaryPlanInput {
  canary: { version: number; replicas: number };
  primary: { version: number; replicas: number };
  /** The canary's share of traffic to reach, 0–100. */
  weight: number;
  /** Rolling back: the canary goes to 0 replicas once the primary carries all traffic. */
  rollingBack: boolean;
  /** Total capacity may reach 100 + surgePercent percent (of the steady state); more only when Nc ≠ Np needs it (see canary.ts). */
  surgePercent: number;
  observed: ObservedReplica[];
  /** GPU budget, as in PlanInput; absent: GPUs do not limit launches. */
  gpu?: { free: number; perCanaryReplica: number; perPrimaryReplica: number };
}

/** The next step of a traffic-led rollout. `launch` counts canary replicas. */
export interface CanaryPlanStep extends PlanStep {
  /** Primary replicas to launch (rolling back, or a lower percent needs them again). */
  launchPrimary: number;
  /** The canary's share of traffic after this step, 0–100 (exact, not rounded). */
  canaryPercent: number;
  /** The step's `weight` is reached: traffic at it and replica counts settled for it. */
  reached: boolean;
}
