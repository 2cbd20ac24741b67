/**
 * The service spec after validation, with every default filled in. Keys stay snake_case,
 * as users write them in YAML (like SkyServe), so a spec round-trips unchanged.
 * The zod schema in `schema.ts` produces exactly this type.
 */
export type ProviderName = 'local' | 'aws';
export type RolloutStrategy = 'rolling' | 'blue_green' | 'canary';

/** A count (`2`) or a percent of `replicas` (`"25%"`). */
export type Quantity = number | string;

export interface ResourcesSpec {
  provider: ProviderName;
  /** `"A100:1"`, `"L4:2"`, `"A100"` (= 1). Absent: the replica needs no GPU. */
  accelerators?: string;
  instance_type?: string;
}

export interface ReadinessProbeSpec {
  /** HTTP path probed with GET; 2xx means ready. Default `/health`. */
  path: string;
  /** Grace period a replica has to become ready after launch. Default 1200. */
  initial_delay_seconds: number;
  /** Seconds between probes. Default 5. */
  period_seconds: number;
  /** Per-probe timeout. Default 5. */
  timeout_seconds: number;
  /** Consecutive failed probes of a READY replica before it counts as NOT_READY. Default 3. */
  failure_threshold: number;
}

export interface RolloutSpec {
  strategy: RolloutStrategy;
  /** Extra replicas allowed above `replicas` during a rollout. Default 1. */
  max_surge: Quantity;
  /** Ready replicas that may be missing below `replicas` during a rollout. Default 0. */
  max_unavailable: Quantity;
  /** Duration string (`"120m"`, `"90s"`, `"2h"`). Past it the rollout rolls back. Default `"120m"`. */
  timeout: string;
}

export interface ServiceSpec {
  /** DNS-label-like: lowercase letters, digits and `-`, starting with a letter, at most 40 chars. */
  name: string;
  /** Desired number of replicas, integer >= 1. */
  replicas: number;
  /** Shell command the replica runs; it must listen on `$PORT`. */
  run: string;
  /** Extra environment variables for the replica. Default `{}`. */
  env: Record<string, string>;
  resources: ResourcesSpec;
  readiness_probe: ReadinessProbeSpec;
  rollout: RolloutSpec;
}

/** One problem in a spec: the field's path (`rollout.max_surge`) and what was expected. */
export interface SpecIssue {
  path: string;
  message: string;
}
