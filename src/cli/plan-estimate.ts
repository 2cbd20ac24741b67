/**
 * The estimate under `rollout plan`'s stage table: what the rollout costs, from the same stages
 * (src/plan/estimate.ts holds the model), with the load time from the serving replicas'
 * measurements or the spec, and the price from the AWS catalog. Pure.
 */
import { canarySteps, estimateRollout, type PlanStage } from '../plan';
import { CATALOG, CatalogMissError, catalogEntry, instanceTypesFor } from '../providers/aws/catalog';
import { parseAccelerators } from '../spec/accelerators';
import { parseDurationMs } from '../spec/duration';
import type { ServiceSpec } from '../spec/types';
import type { ServiceStatus } from '../workflows/types';
import type { PlanView } from './commands/plan';

/**
 * What the rollout costs (the `estimate` of `rollout plan -o json`); see src/plan/estimate.ts for
 * the model. Hours are rounded to 4 decimals, dollars to cents, seconds to whole ones.
 */
export interface PlanEstimate {
  /** Start to done, leaving out indefinite pauses (then `lowerBound`). */
  durationSeconds: number;
  /** Replica-hours above the target's `replicas` (loading replicas count: they are paid for). */
  extraReplicaHours: number;
  /** extraReplicaHours × GPUs per replica. */
  extraGpuHours: number;
  gpusPerReplica: number;
  /** provider aws with a known on-demand price only: extraReplicaHours × that price. */
  extraCostUsd?: number;
  /** Seconds each launch waits for its replicas to be READY. */
  loadSeconds: number;
  /** `measured`: the slowest load of the serving version's replicas; else the spec's grace period. */
  loadTimeSource: 'measured' | 'initial_delay_seconds';
  /** With `measured`: the replica whose load time it is. */
  measuredReplica?: string;
  /** `{pause: {}}` steps the figures leave out, and the replicas above steady state while one holds. */
  indefinitePauses: number;
  extraReplicasWhileHeld: number;
  /** True when time is left out (an indefinite pause, or the plan stopped early). */
  lowerBound: boolean;
  /** provider aws: the instance type priced (null: unknown, e.g. a launch template's) and its on-demand price (null: unknown). */
  price?: AwsPrice;
}

export interface AwsPrice {
  instanceType: string | null;
  onDemandUsdPerHour: number | null;
  region: string;
  pricesAsOf: string;
  /** Spot instances: the on-demand price is an upper bound (spot prices are lower and vary). */
  spot: boolean;
}

/** The estimate of a plan's stages: load time from the serving replicas or the spec, price from the catalog. Pure. */
export function planEstimate(spec: ServiceSpec, status: ServiceStatus | undefined, stages: PlanStage[]): PlanEstimate {
  const load = loadTime(spec, status);
  const cost = replicaCost(spec);
  const analysis = spec.rollout.analysis;
  const e = estimateRollout({
    stages,
    steps: canarySteps(spec),
    steadyReplicas: spec.replicas,
    loadSeconds: load.seconds,
    analysisIntervalSeconds: analysis ? parseDurationMs(analysis.interval) / 1000 : undefined,
    gpusPerReplica: cost.gpusPerReplica,
    usdPerReplicaHour: cost.price?.onDemandUsdPerHour ?? undefined,
  });
  return {
    durationSeconds: Math.round(e.durationSeconds),
    extraReplicaHours: round(e.extraReplicaHours, 4),
    extraGpuHours: round(e.extraGpuHours, 4),
    gpusPerReplica: cost.gpusPerReplica,
    ...(e.extraCostUsd !== undefined ? { extraCostUsd: round(e.extraCostUsd, 2) } : {}),
    loadSeconds: load.seconds,
    loadTimeSource: load.replica ? 'measured' : 'initial_delay_seconds',
    ...(load.replica ? { measuredReplica: load.replica } : {}),
    indefinitePauses: e.indefinitePauses,
    extraReplicasWhileHeld: e.extraReplicasWhileHeld,
    lowerBound: e.lowerBound,
    ...(cost.price ? { price: cost.price } : {}),
  };
}

/**
 * The load time to plan with: the slowest measured load among the serving version's replicas
 * (the slowest, not the latest: a launch waits for every replica it started, and one fast reload
 * should not hide a model that usually takes long), else `initial_delay_seconds` (the longest a
 * replica may take before it counts as FAILED, so an upper bound of a load that succeeds).
 */
function loadTime(spec: ServiceSpec, status: ServiceStatus | undefined): { seconds: number; replica?: string } {
  const measured = (status?.replicas ?? []).filter((r) => r.version === status?.version && r.loadSeconds !== undefined);
  const slowest = measured.reduce<(typeof measured)[number] | undefined>((a, r) => (a && (a.loadSeconds ?? 0) >= (r.loadSeconds ?? 0) ? a : r), undefined);
  if (slowest?.loadSeconds !== undefined) return { seconds: slowest.loadSeconds, replica: slowest.id };
  return { seconds: spec.readiness_probe.initial_delay_seconds };
}

/**
 * GPUs per replica and, for provider aws, the instance type and its on-demand price from the
 * catalog: `resources.instance_type`, else the catalog's first choice for `accelerators` (the
 * one launches try first). Provider local costs nothing here (no price).
 */
function replicaCost(spec: ServiceSpec): { gpusPerReplica: number; price?: AwsPrice } {
  const r = spec.resources;
  const requested = parseAccelerators(r.accelerators)?.count;
  if (r.provider !== 'aws') return { gpusPerReplica: requested ?? 0 };
  let instanceType: string | null = r.instance_type ?? null;
  if (!instanceType && r.accelerators) {
    const accel = parseAccelerators(r.accelerators);
    try {
      instanceType = accel ? (instanceTypesFor(accel.name, accel.count)[0] ?? null) : null;
    } catch (err) {
      // The deploy refuses such a spec with the same message; a plan still shows its stages.
      if (!(err instanceof CatalogMissError)) throw err;
    }
  }
  const entry = instanceType ? catalogEntry(instanceType) : undefined;
  return {
    gpusPerReplica: requested ?? entry?.gpus ?? 0,
    price: { instanceType, onDemandUsdPerHour: entry?.on_demand_usd_per_hour ?? null, region: CATALOG.region, pricesAsOf: CATALOG.prices_as_of, spot: r.spot === true },
  };
}

const round = (x: number, decimals: number): number => Math.round(x * 10 ** decimals) / 10 ** decimals;

/**
 * The estimate under the table, what it assumed said with it:
 *   estimate  ~2 min 4 s; +0.0344 replica-hours, +0.0344 GPU-hours above the steady state (2 replicas)
 *             load time 62 s per launch: initial_delay_seconds (no running service read), the longest a replica may take to become READY
 *             ~$0.03 at g5.xlarge, on-demand $1.006/h (us-east-1, catalog prices of 2025-06)
 */
export function renderEstimate(view: Pick<PlanView, 'estimate' | 'fromVersion' | 'stages'>, spec: ServiceSpec, assumed: boolean): string[] {
  const e = view.estimate;
  const pad = ' '.repeat('estimate  '.length);
  const gpu = e.gpusPerReplica > 0 ? `, +${formatHours(e.extraGpuHours)} GPU-hours` : '';
  const lines = [`estimate  ~${formatSeconds(e.durationSeconds)}${e.lowerBound ? ' or more' : ''}; +${formatHours(e.extraReplicaHours)} replica-hours${gpu} above the steady state (${spec.replicas} replica(s))`];
  const source =
    e.loadTimeSource === 'measured'
      ? `measured (the slowest v${view.fromVersion} replica to become READY: ${e.measuredReplica})`
      : `initial_delay_seconds (${assumed ? 'no running service read' : view.fromVersion === 0 ? 'a first deploy: nothing measured yet' : `not measured yet on v${view.fromVersion}`}), the longest a replica may take to become READY`;
  lines.push(`${pad}load time ${e.loadSeconds} s per launch: ${source}`);
  if (spec.rollout.analysis && view.stages.some((s) => s.step !== undefined)) {
    lines.push(`${pad}analysis every ${spec.rollout.analysis.interval}: each step but the last waits for a check, every check assumed to pass`);
  }
  if (e.price) lines.push(pad + renderPrice(e.price, e.extraCostUsd, spec));
  if (e.indefinitePauses > 0) {
    const held = e.extraReplicasWhileHeld > 0 ? `: ${e.extraReplicasWhileHeld} replica(s) above the steady state for as long as it holds` : '';
    lines.push(`${pad}a lower bound: ${e.indefinitePauses} pause(s) until resumed not counted (each holds until someone lets the rollout go on)${held}`);
  } else if (e.lowerBound) {
    lines.push(`${pad}a lower bound: the plan stops early, the rest of the rollout is not counted`);
  }
  return lines;
}

function renderPrice(price: AwsPrice, costUsd: number | undefined, spec: ServiceSpec): string {
  const where = `${price.region}, catalog prices of ${price.pricesAsOf}`;
  if (price.instanceType === null) {
    return spec.resources.accelerators && !spec.resources.launch_template
      ? `no dollar figure: the catalog has no instance type for accelerators ${spec.resources.accelerators} (a deploy refuses it: set instance_type)`
      : 'no dollar figure: the instance type comes from the launch template (not in the catalog)';
  }
  if (price.onDemandUsdPerHour === null || costUsd === undefined) {
    return catalogEntry(price.instanceType)
      ? `no dollar figure: the catalog has no price it is sure of for ${price.instanceType}`
      : `no dollar figure: ${price.instanceType} is not in the catalog`;
  }
  const spot = price.spot ? '; spot: an upper bound, spot prices are lower and vary' : '';
  return `~${formatUsd(costUsd)} at ${price.instanceType}, on-demand $${price.onDemandUsdPerHour}/h (${where})${spot}`;
}

/** "45 s", "4 min 10 s", "2 h 5 min", "3 d 4 h": the two largest units. */
function formatSeconds(total: number): string {
  const s = Math.round(total);
  if (s < 60) return `${s} s`;
  const units: [string, number, string, number][] = [
    ['d', 86_400, 'h', 3600],
    ['h', 3600, 'min', 60],
    ['min', 60, 's', 1],
  ];
  const [big, bigSize, small, smallSize] = units.find(([, size]) => s >= size) ?? units[units.length - 1];
  const rest = Math.floor((s % bigSize) / smallSize);
  return `${Math.floor(s / bigSize)} ${big}${rest > 0 ? ` ${rest} ${small}` : ''}`;
}

/** The JSON's figures as they are (hours to 4 decimals, dollars to cents). */
const formatHours = (h: number): string => String(h);
const formatUsd = (usd: number): string => `$${usd.toFixed(2)}`;
