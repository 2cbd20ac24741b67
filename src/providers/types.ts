/**
 * Where replicas live. A provider is a narrow interface: launch, describe, terminate.
 * Every call is idempotent, keyed by the replica id the workflow chose.
 */
import type { ResourcesSpec } from '../spec/types';

export interface LaunchRequest {
  /** Deterministic id chosen by the workflow, e.g. `llm-v2-r3`. Launching an id that exists returns it. */
  replicaId: string;
  service: string;
  version: number;
  /** Shell command; the replica must listen on `$PORT`. */
  run: string;
  env: Record<string, string>;
  /** GPUs this replica needs (0: none). */
  gpus: number;
  /** Accelerator name from the spec (`A100`), informative. */
  accelerator?: string;
  instanceType?: string;
  /** The spec's `resources`, for providers that read more of it than the GPUs (aws). */
  resources?: ResourcesSpec;
  /**
   * Names of `env` entries whose values came from secret references (resolved on the worker).
   * A provider that cannot keep a value secret (aws: user data is readable) refuses them.
   */
  secretNames?: string[];
}

export type ProviderReplicaState = 'running' | 'exited' | 'missing';

export interface ReplicaHandle {
  replicaId: string;
  service: string;
  version: number;
  /** Base URL the replica answers on, e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  /** GPU indices handed to it (local: CUDA_VISIBLE_DEVICES). */
  gpuIds: number[];
  /** Provider-specific handle: pid locally, instance id on AWS. */
  externalId: string;
}

export interface ReplicaDescription extends ReplicaHandle {
  state: ProviderReplicaState;
  /** Exit code or signal, when exited. */
  exitInfo?: string;
}

/** One thing a provider holds for a service (an EC2 instance), as `rollout gc` sees it. */
export interface HeldReplica {
  /** Its replica tag; '' when it has none. */
  replicaId: string;
  /** Its version tag; null when missing or not a version. */
  version: number | null;
  /** The provider's own state name (running, stopped, shutting-down…). */
  state: string;
  /** The instance id. */
  externalId: string;
  /** It cannot be the replica its tag names (tags that disagree with the id, a younger duplicate): a stray whoever owns the id. */
  stray: boolean;
}

export interface GpuInventory {
  total: number;
  free: number;
  /**
   * true: GPUs are accounted strictly (a count was configured, or GPUs were detected).
   * false: no GPU on the host and none configured: replicas run without accelerators
   * and GPU requests do not limit launches (CPU-only machines, CI).
   */
  strict: boolean;
}

/** Typed provider errors; `retryable` tells activities how to wrap them. */
export class ProviderError extends Error {
  constructor(
    message: string,
    readonly type: 'CapacityError' | 'ThrottlingError' | 'InvalidRequest' | 'CredentialsError' | 'ProviderError',
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = type;
  }
}

export interface Provider {
  readonly name: string;
  /** Idempotent: a second call with the same replicaId returns the existing replica if it still runs. */
  launch(req: LaunchRequest): Promise<ReplicaHandle>;
  /** `missing` when the provider has no record of the id. */
  describe(replicaId: string): Promise<ReplicaDescription>;
  /** Idempotent: terminating a replica that is gone succeeds. Waits until it is gone. */
  terminate(replicaId: string): Promise<void>;
  /** All replicas the provider knows of, optionally for one service. */
  list(service?: string): Promise<ReplicaDescription[]>;
  /** GPU inventory (total/free). */
  gpus(): Promise<GpuInventory>;
  /**
   * Optional, for providers whose resources can exist without a record of ours (EC2 instances,
   * found by tag): every one held for the service, one entry each; `rollout gc` and the sweeps
   * use it instead of `list`, and terminate with `terminateHeld` (by external id, within the
   * service: nothing of another service is touched).
   */
  listHeld?(service: string): Promise<HeldReplica[]>;
  terminateHeld?(service: string, externalIds: string[]): Promise<void>;
  /**
   * Optional, for providers that hear of a replica's end as it happens (the local provider: its
   * children's exit events): resolves once one of `replicaIds` has stopped at or after `since`
   * (epoch ms), else when `signal` aborts. Watches wait on it beside their probe period, so a
   * replica that dies is seen at once instead of at the next probe. Without it, they poll.
   */
  whenAnyStops?(replicaIds: string[], since: number, signal: AbortSignal): Promise<void>;
}
