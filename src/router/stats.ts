/**
 * Per-service, per-version statistics for canary analysis (admin JSON) and Prometheus
 * (`/metrics`, prom-client): requests, 5xx, connection errors, in-flight, latency and time
 * to first byte histograms. Quantiles in the JSON are estimated from the histogram buckets.
 */
import client from 'prom-client';

export interface VersionStats {
  requests: number;
  errors5xx: number;
  connectErrors: number;
  inflight: number;
  latencyMs: { p50: number | null; p99: number | null };
  ttfbMs: { p50: number | null; p99: number | null };
}

const BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export class RouterStats {
  readonly registry = new client.Registry();
  private readonly requests = new client.Counter({ name: 'rollout_router_requests_total', help: 'Requests answered, by service, version and status class', labelNames: ['service', 'version', 'code'] as const, registers: [this.registry] });
  private readonly connectErrors = new client.Counter({ name: 'rollout_router_connect_errors_total', help: 'Requests a replica refused or broke off before answering (retried on another replica)', labelNames: ['service', 'version'] as const, registers: [this.registry] });
  private readonly inflightGauge = new client.Gauge({ name: 'rollout_router_inflight', help: 'Requests in flight', labelNames: ['service', 'version'] as const, registers: [this.registry] });
  private readonly latency = new client.Histogram({ name: 'rollout_router_request_duration_seconds', help: 'Time from dispatch to the end of the response', labelNames: ['service', 'version'] as const, buckets: BUCKETS_S, registers: [this.registry] });
  private readonly ttfb = new client.Histogram({ name: 'rollout_router_time_to_first_byte_seconds', help: 'Time from dispatch to the response headers (first token for streams)', labelNames: ['service', 'version'] as const, buckets: BUCKETS_S, registers: [this.registry] });

  private readonly counts = new Map<string, Map<number, { requests: number; errors5xx: number; connectErrors: number; inflight: number }>>();
  /** prom-client children per (service, version): label hashing once, not on every request. */
  private readonly children = new Map<string, ReturnType<RouterStats['makeChildren']>>();

  private makeChildren(service: string, version: string) {
    return {
      inflight: this.inflightGauge.labels(service, version),
      connectErrors: this.connectErrors.labels(service, version),
      latency: this.latency.labels(service, version),
      ttfb: this.ttfb.labels(service, version),
      byCode: new Map<string, client.Counter.Internal>(),
    };
  }

  private metricsOf(service: string, version: number) {
    const key = `${service}\u0000${version}`;
    let c = this.children.get(key);
    if (!c) this.children.set(key, (c = this.makeChildren(service, String(version))));
    return c;
  }
  private readonly inflightByReplica = new Map<string, Map<string, number>>();

  private entry(service: string, version: number) {
    let byVersion = this.counts.get(service);
    if (!byVersion) this.counts.set(service, (byVersion = new Map()));
    let stats = byVersion.get(version);
    if (!stats) byVersion.set(version, (stats = { requests: 0, errors5xx: 0, connectErrors: 0, inflight: 0 }));
    return stats;
  }

  started(service: string, version: number, replicaId: string): void {
    this.entry(service, version).inflight += 1;
    this.metricsOf(service, version).inflight.inc();
    let byReplica = this.inflightByReplica.get(service);
    if (!byReplica) this.inflightByReplica.set(service, (byReplica = new Map()));
    byReplica.set(replicaId, (byReplica.get(replicaId) ?? 0) + 1);
  }

  /** `ttfbMs` and `durationMs` are absent for connection errors. */
  finished(service: string, version: number, replicaId: string, status: number | 'connect-error', timing?: { ttfbMs: number; durationMs: number }): void {
    const metrics = this.metricsOf(service, version);
    const stats = this.entry(service, version);
    stats.inflight -= 1;
    metrics.inflight.dec();
    if (status === 'connect-error') {
      stats.connectErrors += 1;
      metrics.connectErrors.inc();
    } else {
      stats.requests += 1;
      if (status >= 500) stats.errors5xx += 1;
      const code = `${Math.floor(status / 100)}xx`;
      let counter = metrics.byCode.get(code);
      if (!counter) metrics.byCode.set(code, (counter = this.requests.labels(service, String(version), code)));
      counter.inc();
      if (timing) {
        metrics.latency.observe(timing.durationMs / 1000);
        metrics.ttfb.observe(timing.ttfbMs / 1000);
      }
    }
    const byReplica = this.inflightByReplica.get(service);
    const left = (byReplica?.get(replicaId) ?? 1) - 1;
    if (left <= 0) byReplica?.delete(replicaId);
    else byReplica?.set(replicaId, left);
  }

  inflight(service: string, replicaId?: string): number {
    const byReplica = this.inflightByReplica.get(service);
    if (!byReplica) return 0;
    if (replicaId) return byReplica.get(replicaId) ?? 0;
    return [...byReplica.values()].reduce((a, b) => a + b, 0);
  }

  inflightByReplicaOf(service: string): Record<string, number> {
    return Object.fromEntries(this.inflightByReplica.get(service) ?? []);
  }

  async byVersion(service: string): Promise<Record<string, VersionStats>> {
    const latency = await this.latency.get();
    const ttfb = await this.ttfb.get();
    const out: Record<string, VersionStats> = {};
    for (const [version, s] of this.counts.get(service) ?? []) {
      const labels = { service, version: String(version) };
      out[String(version)] = {
        ...s,
        latencyMs: { p50: quantileMs(latency.values, labels, 0.5), p99: quantileMs(latency.values, labels, 0.99) },
        ttfbMs: { p50: quantileMs(ttfb.values, labels, 0.5), p99: quantileMs(ttfb.values, labels, 0.99) },
      };
    }
    return out;
  }
}

type HistogramValue = { labels: Record<string, string | number>; value: number; metricName?: string };

/** The q-quantile in ms, interpolated linearly inside the bucket that holds it; null without data. */
export function quantileMs(values: HistogramValue[], labels: { service: string; version: string }, q: number): number | null {
  const buckets = values
    .filter((v) => v.metricName?.endsWith('_bucket') && v.labels.service === labels.service && v.labels.version === labels.version)
    .map((v) => ({ le: v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), cumulative: v.value }))
    .sort((a, b) => a.le - b.le);
  const total = buckets[buckets.length - 1]?.cumulative ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let previous = { le: 0, cumulative: 0 };
  for (const b of buckets) {
    if (b.cumulative >= rank) {
      if (b.le === Infinity) return previous.le * 1000;
      const inBucket = b.cumulative - previous.cumulative;
      const fraction = inBucket === 0 ? 1 : (rank - previous.cumulative) / inBucket;
      return (previous.le + (b.le - previous.le) * fraction) * 1000;
    }
    previous = b;
  }
  return previous.le * 1000;
}
