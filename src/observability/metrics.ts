/**
 * The worker's Prometheus metrics (prom-client, one registry per worker). Labels are bounded
 * sets only — strategy, outcome, activity type, provider, state — never a service name or a
 * version: a fleet of hundreds of services must not become thousands of series. Which service
 * did what is in the Temporal UI and `rollout status`, found by search attribute.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Provider } from '../providers/types';

import type { ReplicaStatus } from '../plan/types';
import type { RolloutOutcomeLabel as OutcomeLabel, ReplicaStateReport, RolloutStrategyLabel as StrategyLabel } from '../workflows/metrics-sink';

/** Rollouts take from seconds (a small in-place update) to days (a canary held by hand). */
export const DURATION_BUCKETS_SECONDS = [5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400, 43_200, 86_400, 604_800];

/** Every state a workflow gives a replica (src/plan/types.ts): each has a series per provider, 0 or more. */
const REPLICA_STATES: readonly ReplicaStatus[] = ['PROVISIONING', 'STARTING', 'READY', 'NOT_READY', 'SHUTTING_DOWN', 'FAILED', 'TERMINATED'];
/** Services whose report is kept: far more than one worker runs; past it the oldest report goes. */
const REMEMBERED_SERVICES = 10_000;

/** A provider's listing is reused for this long: a scrape every few seconds must not become an EC2 API call each. */
const REPLICA_LISTING_TTL_MS = 15_000;
/** A provider that does not answer within this long is left out of a scrape (and counted in rollout_replica_listing_errors_total). */
const REPLICA_LISTING_TIMEOUT_MS = 5_000;

export class WorkerMetrics {
  readonly registry = new Registry();
  private readonly started: Counter<'strategy'>;
  private readonly finished: Counter<'strategy' | 'outcome'>;
  private readonly duration: Histogram<'strategy' | 'outcome'>;
  private readonly activityFailures: Counter<'activity_type'>;
  private readonly listingErrors: Counter<'provider'>;
  private readonly listings = new Map<string, { at: number; counts: Map<string, number> }>();
  private providers: Record<string, Provider> = {};
  /** The latest replica-state report per service, and the workflow that made it (replica-states.ts). */
  private readonly replicaReports = new Map<string, { workflowId: string; replicas: ReplicaStateReport[] }>();

  constructor() {
    const registers = [this.registry];
    this.started = new Counter({ name: 'rollout_rollouts_started_total', help: 'Rollouts started (a rollout continued as new is not counted again)', labelNames: ['strategy'], registers });
    this.finished = new Counter({ name: 'rollout_rollouts_finished_total', help: 'Rollouts finished, by how they ended', labelNames: ['strategy', 'outcome'], registers });
    this.duration = new Histogram({
      name: 'rollout_rollout_duration_seconds',
      help: 'Time from the start of a rollout (its first run) to its end',
      labelNames: ['strategy', 'outcome'],
      buckets: DURATION_BUCKETS_SECONDS,
      registers,
    });
    this.activityFailures = new Counter({
      name: 'rollout_activity_failures_total',
      help: 'Activity attempts that failed (each retry counts; cancellations do not)',
      labelNames: ['activity_type'],
      registers,
    });
    this.listingErrors = new Counter({ name: 'rollout_replica_listing_errors_total', help: 'Scrapes in which a provider could not list its replicas', labelNames: ['provider'], registers });
    const listingErrors = this.listingErrors;
    const listings = this.listings;
    const providersNow = () => this.providers;
    const reports = this.replicaReports;
    new Gauge({
      name: 'rollout_replicas',
      help: 'Replicas by their state in the workflows (as `rollout status` shows it), summed over the latest report of each service this worker runs',
      labelNames: ['provider', 'state'],
      registers,
      collect() {
        this.reset();
        // Every state of every provider, 0 when none: `rollout_replicas{state!="READY"}` has series to be 0 on.
        for (const provider of Object.keys(providersNow())) for (const state of REPLICA_STATES) this.set({ provider, state }, 0);
        for (const { replicas } of reports.values()) for (const r of replicas) this.inc({ provider: r.provider, state: r.state });
      },
    });
    new Gauge({
      name: 'rollout_replica_processes',
      help: "Replicas the worker's providers hold, by the provider's view of their state (running, exited)",
      labelNames: ['provider', 'state'],
      registers,
      // Computed at scrape time from the providers' own records: true after a worker restart,
      // and the same whichever worker ran the workflows.
      async collect() {
        this.reset();
        await Promise.all(
          Object.entries(providersNow()).map(async ([name, provider]) => {
            const cached = listings.get(name);
            let counts = cached && Date.now() - cached.at < REPLICA_LISTING_TTL_MS ? cached.counts : undefined;
            if (!counts) {
              try {
                counts = countByState(await withTimeout(provider.list(), REPLICA_LISTING_TIMEOUT_MS));
                listings.set(name, { at: Date.now(), counts });
              } catch {
                listingErrors.inc({ provider: name });
                return;
              }
            }
            // Both states always, so `rollout_replica_processes{state="exited"} > 0` has a series to be 0 on.
            for (const state of ['running', 'exited']) this.set({ provider: name, state }, counts.get(state) ?? 0);
            for (const [state, n] of counts) if (state !== 'running' && state !== 'exited') this.set({ provider: name, state }, n);
          }),
        );
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }

  /** The providers whose replicas `rollout_replica_processes` lists and `rollout_replicas` has series for (the worker's, once built). */
  observeProviders(providers: Record<string, Provider>): void {
    this.providers = providers;
    this.listings.clear();
  }

  /**
   * A workflow's report of `service`'s replicas: replaces the service's last one (the rollout's
   * replaces the service's and back). An empty one removes the service's report, but only when
   * it is the caller's own: a rollout that ends must not erase what its service reported since.
   */
  replicaStatesReported(workflowId: string, service: string, replicas: ReplicaStateReport[]): void {
    if (replicas.length === 0) {
      if (this.replicaReports.get(service)?.workflowId === workflowId) this.replicaReports.delete(service);
      return;
    }
    this.replicaReports.delete(service); // re-inserted last: the Map's order is the reports' age
    this.replicaReports.set(service, { workflowId, replicas });
    if (this.replicaReports.size > REMEMBERED_SERVICES) this.replicaReports.delete(this.replicaReports.keys().next().value as string);
  }

  rolloutStarted(strategy: StrategyLabel): void {
    this.started.inc({ strategy });
  }

  rolloutFinished(strategy: StrategyLabel, outcome: OutcomeLabel, durationSeconds: number): void {
    this.finished.inc({ strategy, outcome });
    this.duration.observe({ strategy, outcome }, Math.max(0, durationSeconds));
  }

  activityFailed(activityType: string): void {
    this.activityFailures.inc({ activity_type: activityType });
  }
}

function countByState(replicas: Array<{ state: string }>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of replicas) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
  return counts;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}
