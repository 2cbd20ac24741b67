/**
 * One service's cumulative counters per version, read from the router's `/metrics` text
 * (metric names as native/router/src/stats.rs writes them): answered requests and 5xx answers
 * from `rollout_router_requests_total{service,version,code}`, the time-to-first-byte
 * histogram from `rollout_router_time_to_first_byte_seconds_bucket{service,version,le}`.
 * The `+Inf` bucket keeps its bound as the string `'+Inf'` (JSON has no Infinity).
 */
import type { HistogramBucket, StatsSnapshot, VersionCounters } from '../plan/analysis';
import { MetricsFormatError, parseSamples } from './prometheus-text';

const REQUESTS = 'rollout_router_requests_total';
const TTFB_BUCKET = 'rollout_router_time_to_first_byte_seconds_bucket';

export function countersFromMetrics(text: string, service: string): StatsSnapshot {
  const byVersion = new Map<string, VersionCounters>();
  const entry = (version: string | undefined): VersionCounters => {
    if (version === undefined || !/^\d+$/.test(version)) throw new MetricsFormatError(`expected an integer version label, got ${JSON.stringify(version)}`);
    let counters = byVersion.get(version);
    if (!counters) byVersion.set(version, (counters = { requests: 0, errors5xx: 0, ttfbBuckets: [] }));
    return counters;
  };
  for (const { name, labels, value } of parseSamples(text, new Set([REQUESTS, TTFB_BUCKET]))) {
    if (labels.service !== service) continue;
    if (!Number.isFinite(value) || value < 0) throw new MetricsFormatError(`${name}${JSON.stringify(labels)}: expected a count, got ${value}`);
    const counters = entry(labels.version);
    if (name === REQUESTS) {
      if (labels.code === undefined) throw new MetricsFormatError(`${name}: sample without a code label`);
      counters.requests += value;
      if (labels.code === '5xx') counters.errors5xx += value;
    } else {
      counters.ttfbBuckets.push({ le: bucketBound(labels.le), count: value });
    }
  }
  for (const [version, counters] of byVersion) {
    counters.ttfbBuckets.sort((a, b) => boundValue(a.le) - boundValue(b.le));
    if (counters.ttfbBuckets.some((b, i) => i > 0 && b.le === counters.ttfbBuckets[i - 1].le)) throw new MetricsFormatError(`${TTFB_BUCKET} of version ${version}: a bucket bound appears twice`);
    const last = counters.ttfbBuckets[counters.ttfbBuckets.length - 1];
    if (last && last.le !== '+Inf') throw new MetricsFormatError(`${TTFB_BUCKET} of version ${version}: no +Inf bucket`);
  }
  return Object.fromEntries(byVersion);
}

function bucketBound(le: string | undefined): HistogramBucket['le'] {
  if (le === '+Inf') return '+Inf';
  const bound = Number(le);
  if (le === undefined || le.trim() === '' || !Number.isFinite(bound)) throw new MetricsFormatError(`${TTFB_BUCKET}: expected an le label, got ${JSON.stringify(le)}`);
  return bound;
}

function boundValue(le: HistogramBucket['le']): number {
  return le === '+Inf' ? Infinity : le;
}
