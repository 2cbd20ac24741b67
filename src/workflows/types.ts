/**
 * The records the service and rollout workflows keep and exchange. Plain data: they cross
 * Temporal payloads, the CLI's `--output json`, and continue-as-new.
 */
import type { ReplicaStatus } from '../plan/types';
import type { ServiceSpec } from '../spec/types';

export const TASK_QUEUE = 'gpu-rollout';

export const serviceWorkflowId = (service: string): string => `service-${service}`;
export const rolloutWorkflowId = (service: string, version: number): string => `rollout-${service}-v${version}`;

export interface ReplicaRecord {
  id: string;
  version: number;
  status: ReplicaStatus;
  /** Base URL once launched. */
  endpoint?: string;
  /** GPUs it holds. */
  gpus: number;
  /** Why it failed, when FAILED. */
  message?: string;
}

export interface DeployInput {
  spec: ServiceSpec;
}

export interface DeployResult {
  version: number;
  rolloutWorkflowId: string;
}

export type RolloutOutcome = 'succeeded' | 'rolled_back' | 'failed';

export interface RolloutSummary {
  version: number;
  workflowId: string;
  outcome: RolloutOutcome;
  reason?: string;
}

export interface ServiceState {
  name: string;
  /** Version serving traffic; 0 before the first successful rollout. */
  version: number;
  spec?: ServiceSpec;
  /** Version number the next deploy gets (versions are never reused, so rollout ids stay unique). */
  nextVersion: number;
  replicas: ReplicaRecord[];
  /** Counter for replica ids, so ids never repeat within a service. */
  replicaSeq: number;
  /** The service's URL through the router, once traffic was set. */
  endpoint?: string;
  activeRollout?: { workflowId: string; version: number };
  /** Most recent rollouts, newest last (bounded). */
  history: RolloutSummary[];
}

export interface ServiceWorkflowInput {
  name: string;
  /** Present when continuing as new. */
  state?: ServiceState;
}

export interface ServiceStatus {
  name: string;
  version: number;
  spec?: ServiceSpec;
  endpoint?: string;
  replicas: ReplicaRecord[];
  /** Percent of traffic per version (keys are versions). */
  traffic: Record<string, number>;
  activeRollout?: { workflowId: string; version: number };
  lastRollout?: RolloutSummary;
}

export interface RolloutInput {
  service: string;
  fromVersion: number;
  fromSpec?: ServiceSpec;
  toVersion: number;
  toSpec: ServiceSpec;
  replicas: ReplicaRecord[];
  replicaSeq: number;
}

export interface RolloutResult {
  outcome: RolloutOutcome;
  reason?: string;
  /** The version serving traffic at the end. */
  servingVersion: number;
  replicas: ReplicaRecord[];
  replicaSeq: number;
  endpoint?: string;
}

export type RolloutPhase = 'rolling_out' | 'paused' | 'rolling_back' | 'succeeded' | 'rolled_back' | 'failed';

export interface RolloutStatus {
  workflowId: string;
  service: string;
  fromVersion: number;
  toVersion: number;
  phase: RolloutPhase;
  reason?: string;
  /** What the planner said last. */
  note: string;
  replicas: ReplicaRecord[];
  traffic: Record<string, number>;
  /** Epoch ms at which the rollout rolls back by itself (moves while paused). */
  deadline: number;
  endpoint?: string;
}

export interface RollbackInput {
  reason?: string;
}
