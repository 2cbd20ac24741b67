/**
 * The records the service and rollout workflows keep and exchange. Plain data: they cross
 * Temporal payloads, the CLI's `--output json`, and continue-as-new.
 */
import type { ReplicaStatus, TrafficWeight } from '../plan/types';
import type { DeployMode } from '../spec/diff';
import type { CanaryStep, ServiceSpec } from '../spec/types';
import type { AnalysisSnapshot } from './canary-analysis';
import type { ControlSnapshot } from './rollout-control';
import type { StrayReplica } from '../activities/stray-replicas';

export const TASK_QUEUE = 'gpu-rollout';

export const serviceWorkflowId = (service: string): string => `service-${service}`;
export const rolloutWorkflowId = (service: string, version: number): string => `rollout-${service}-v${version}`;
/** `rollout gc` of a service that has no running service workflow. */
export const gcWorkflowId = (service: string): string => `gc-${service}`;

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
  /**
   * Seconds from its launch until READY (workflow time), once READY: what `rollout plan`
   * takes as the load time of the next rollout's replicas. Absent on replicas recorded before.
   */
  loadSeconds?: number;
}

export interface DeployInput {
  spec: ServiceSpec;
  /** Roll out new replicas even when the change could be applied in place (or nothing changed). */
  force?: boolean;
  /** Start in manual mode, holding the canary at this percent (0–100). */
  canaryPercent?: number;
}

export interface DeployResult {
  /** The new version; the serving one when nothing changed. */
  version: number;
  /** Absent when nothing changed (no rollout). */
  rolloutWorkflowId?: string;
  mode: DeployMode;
  /** Why this mode, in one line. */
  reason: string;
  /** Dotted paths of the fields that changed. */
  changes: string[];
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
  /** Self-healing: replicas replaced since the service began, and the last loss. */
  healing?: HealingRecord;
}

export interface HealingRecord {
  /** Replacement replicas launched. */
  replaced: number;
  /** Why the last replica was lost (or the last replacement failed). */
  lastLost?: string;
  /** Epoch ms of that. */
  lastLostAt?: number;
}

export interface ServiceWorkflowInput {
  name: string;
  /** Present when continuing as new. */
  state?: ServiceState;
}

export interface ServiceStatus {
  name: string;
  version: number;
  /** The version the next deploy gets (versions are never reused). */
  nextVersion: number;
  spec?: ServiceSpec;
  endpoint?: string;
  replicas: ReplicaRecord[];
  /** Percent of traffic per version (keys are versions). */
  traffic: Record<string, number>;
  activeRollout?: { workflowId: string; version: number };
  lastRollout?: RolloutSummary;
  healing?: HealingRecord;
}

export interface RolloutInput {
  service: string;
  fromVersion: number;
  fromSpec?: ServiceSpec;
  toVersion: number;
  toSpec: ServiceSpec;
  replicas: ReplicaRecord[];
  replicaSeq: number;
  /** `in_place`: the running replicas are kept (relabelled to toVersion at the end); only their count changes. */
  mode?: 'rollout' | 'in_place';
  /** Start in manual mode at this canary percent. */
  canaryPercent?: number;
  /** Present when continuing as new: the previous run's state (`replicas` are then its replicas). */
  carried?: RolloutCarry;
  /**
   * The rollout search attributes the namespace has (names; the service asked the worker before
   * starting the rollout): the only ones the rollout sets. Absent (a rollout started before search
   * attributes) or empty: it sets none.
   */
  searchAttributes?: string[];
}

/**
 * What a rollout held for a long time (a canary in manual mode, at `{pause: {}}`, with analysis
 * every minute) carries into its next run when its history grows long. Every replica is READY
 * then: nothing is launching or being removed.
 */
export interface RolloutCarry {
  control: ControlSnapshot;
  analysis?: AnalysisSnapshot;
  note: string;
  canaryPercent: number;
  reachedWeight: boolean;
  /**
   * When the rollout's first run began (workflow time, ms), for its duration metric: the
   * workflow info's `startTime` is the current run's on the test server. Absent in runs
   * continued before it was carried.
   */
  startedAtMs?: number;
  traffic: TrafficWeight[];
  endpoint?: string;
  /** This run's number: 2 for the first continuation. */
  run: number;
  /** The sequence number of the rollout's last ordered traffic change (PATCHES.trafficWithSteps), so the next run's are newer. */
  trafficSeq?: number;
}

/**
 * What ended a rollout, as data (`reason` says it in words): `promoted` (it succeeded), or what
 * rolled it back — `timeout`, `readiness` (a new replica failed to launch or become ready),
 * `replica_lost` (a new replica died after it was READY), `analysis`, `person` (`rollout rollback`
 * or the signal, with their reason), `gpu_shortfall` — or `activity_failed` (an activity failed
 * for good). A rollback that then failed keeps what started it. Absent on rollouts recorded
 * before it existed: `rollout history` then reads the reason's words.
 */
export type RolloutCauseKind = 'promoted' | 'timeout' | 'readiness' | 'replica_lost' | 'analysis' | 'person' | 'gpu_shortfall' | 'activity_failed';

export interface RolloutCause {
  kind: RolloutCauseKind;
  /** readiness, replica_lost: the replica that failed. */
  replicaId?: string;
  /** person: the reason they gave, as kept (control characters as spaces, at most 500 characters). */
  personReason?: string;
}

export interface RolloutResult {
  outcome: RolloutOutcome;
  reason?: string;
  cause?: RolloutCause;
  /** The version serving traffic at the end. */
  servingVersion: number;
  replicas: ReplicaRecord[];
  replicaSeq: number;
  endpoint?: string;
}

export type RolloutPhase = 'rolling_out' | 'paused' | 'manual' | 'rolling_back' | 'succeeded' | 'rolled_back' | 'failed';

/** Every control message, as the `control` update and the signals of the same names take them. */
export type ControlAction = 'pause' | 'resume' | 'advance' | 'setCanaryPercent' | 'promote' | 'rollback';
export const CONTROL_ACTIONS: readonly ControlAction[] = ['pause', 'resume', 'advance', 'setCanaryPercent', 'promote', 'rollback'];

/** Each action as people type it (`rollout set-canary`), for messages. */
export const CONTROL_COMMAND_NAMES: Record<ControlAction, string> = {
  pause: 'pause',
  resume: 'resume',
  advance: 'advance',
  setCanaryPercent: 'set-canary',
  promote: 'promote',
  rollback: 'roll back',
};

export interface ControlRequest {
  action: ControlAction;
  /** setCanaryPercent: 0–100. */
  percent?: number;
  /** rollback: recorded in the history. */
  reason?: string;
}

export interface AnalysisStatus {
  passed: number;
  failed: number;
  inconclusive: number;
  failureLimit: number;
  last?: { verdict: 'pass' | 'fail' | 'inconclusive'; reasons: string[]; at: number };
}

export interface RolloutStatus {
  workflowId: string;
  service: string;
  fromVersion: number;
  toVersion: number;
  phase: RolloutPhase;
  reason?: string;
  /** What started the rollback (or ended the rollout), once something did. */
  cause?: RolloutCause;
  /** What the planner said last. */
  note: string;
  replicas: ReplicaRecord[];
  traffic: Record<string, number>;
  /** Epoch ms at which the rollout rolls back by itself (moves while paused); null in manual mode. */
  deadline: number | null;
  endpoint?: string;
  /** How the rollout moves: `replicas` (rolling, blue-green: traffic follows READY replicas), `steps` (canary steps), `manual` (held at a percent the user set), `in_place`. */
  mode: 'replicas' | 'steps' | 'manual' | 'in_place';
  /** The canary's (new version's) share of traffic now, 0–100. */
  canaryPercent: number;
  /** The canary percent being moved to or held (steps and manual modes). */
  targetPercent?: number;
  /** Canary steps and where the rollout is in them (index into `steps`). */
  steps?: CanaryStep[];
  stepIndex?: number;
  /** Epoch ms at which a timed pause step ends (moves while paused). */
  stepPauseUntil?: number;
  analysis?: AnalysisStatus;
  /** Control messages refused or ignored recently (bad payload, not applicable now), newest last. */
  refused: string[];
  /** Runs of this rollout workflow so far: more than 1 once a long hold continued as new. */
  run: number;
}

/** The failure type of a gc that could not list or terminate (the CLI's exit 1). */
export const GC_FAILED = 'GcFailed';

export interface GcInput {
  /** List the strays, terminate nothing. */
  dryRun?: boolean;
  /** gc-<service> only: a run that starts later than this after the workflow's start does nothing (default GC_START_WITHIN_MS). */
  startWithinMs?: number;
}

/** What `rollout gc` found (and terminated, unless a dry run). */
export interface GcResult {
  service: string;
  dryRun: boolean;
  strays: StrayReplica[];
  /** Replica ids terminated ([] on a dry run). */
  terminated: string[];
  /** Why less was done than asked. */
  note?: string;
}

export interface RollbackInput {
  reason?: string;
}
