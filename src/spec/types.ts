/**
 * The service spec after validation, with every default filled in. Keys stay snake_case,
 * as users write them in YAML (like SkyServe), so a spec round-trips unchanged.
 * The zod schema in `schema.ts` produces exactly this type.
 */
import type { EnvValue } from './secrets';

export type ProviderName = 'local' | 'aws';
export type RolloutStrategy = 'rolling' | 'blue_green' | 'canary';

/** A count (`2`) or a percent of `replicas` (`"25%"`). */
export type Quantity = number | string;

export interface ResourcesSpec {
  provider: ProviderName;
  /** `"A100:1"`, `"L4:2"`, `"A100"` (= 1). Absent: the replica needs no GPU. */
  accelerators?: string;
  instance_type?: string;
  // The fields below are read by the aws provider only (the schema refuses them elsewhere); none
  // has a default in the spec: the provider's defaults are in providers/aws/launch-plan.ts.
  /** AWS region; must be the worker's (its AWS config or environment). */
  region?: string;
  /** AMI; else the launch template's, else the worker's AWS config `image_id`. */
  image_id?: string;
  /** An EC2 launch template (by id or name), with the version to use (default `$Default`). */
  launch_template?: { id?: string; name?: string; version?: string };
  /** Launch as a spot instance (default false). */
  spot?: boolean;
  /** With `spot`: once spot capacity is out in every AZ and type, launch on demand (default false). */
  spot_fallback_on_demand?: boolean;
  /** Size of the root EBS volume (gp3), GiB; default: the AMI's. */
  root_volume_gb?: number;
  /** Reach the replica at its public address instead of its private one (default false). */
  public_ip?: boolean;
  /** The port the replica listens on (each instance has its own address), default 8000. */
  port?: number;
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
  /**
   * Canary steps (strategy `canary` only), in order. Absent: one step `{weight: 100}`.
   * `{weight: 10}` moves 10% of traffic to the new version (its replicas launched first);
   * `{pause: {duration: "10m"}}` holds for 10 minutes; `{pause: {}}` holds until told to go on.
   */
  steps?: CanaryStep[];
  /**
   * Constrained surge for scarce GPUs (rolling and canary): capacity moves in increments of
   * this percent of `replicas` and total capacity never exceeds 100% + this percent.
   */
  max_surge_percent?: number;
  /** Automated canary analysis on the router's figures; absent: no analysis. */
  analysis?: AnalysisSpec;
}

export type CanaryStep = { weight: number } | { pause: { duration?: string } };

export interface AnalysisSpec {
  /** How often the canary's figures are checked (duration string). Default `"1m"`. */
  interval: string;
  /** Highest acceptable fraction of 5xx answers, 0–1 (e.g. 0.05). */
  max_error_rate?: number;
  /** Highest acceptable p99 latency in ms (time to first byte for streams). */
  max_p99_latency_ms?: number;
  /** Fewer canary requests than this in an interval: inconclusive (hold). Default 20. */
  min_requests: number;
  /** More failed checks than this: automatic rollback (Argo's failureLimit). Default 0. */
  failure_limit: number;
}

export interface ServiceSpec {
  /** DNS-label-like: lowercase letters, digits and `-`, starting with a letter, at most 40 chars. */
  name: string;
  /** Desired number of replicas, integer >= 1. */
  replicas: number;
  /** Shell command the replica runs; it must listen on `$PORT`. */
  run: string;
  /**
   * Extra environment variables for the replica. Default `{}`. A value is a literal (stored as
   * is, in Temporal too) or a secret reference, resolved only on the worker at launch (secrets.ts).
   */
  env: Record<string, EnvValue>;
  resources: ResourcesSpec;
  readiness_probe: ReadinessProbeSpec;
  rollout: RolloutSpec;
}

/** One problem in a spec: the field's path (`rollout.max_surge`) and what was expected. */
export interface SpecIssue {
  path: string;
  message: string;
}
