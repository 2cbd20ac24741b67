/**
 * Automated canary analysis, the pure part: the window of traffic between two readings of
 * the router's cumulative counters, a verdict on that window, and the tally of verdicts that
 * decides a rollback (Argo Rollouts' AnalysisRun, reduced to what the router measures).
 * No I/O, no clock: it runs inside workflow code.
 *
 * Counters. The router counts per version since it started: answered requests, 5xx answers,
 * and a cumulative Prometheus-style histogram of time to first byte (first token for a
 * stream), `le` in seconds. +Inf does not survive JSON (Temporal payloads are JSON), so the
 * last bucket's bound is the string `'+Inf'`, as the Prometheus text format writes it:
 * `[{ le: 0.1, count: 7 }, { le: 0.25, count: 9 }, { le: '+Inf', count: 10 }]`.
 *
 * Window (`windowBetween`). The difference of two readings of one version. Counters only grow,
 * so when the difference is not traffic that could have happened (a counter went down, more
 * errors than requests, a cumulative bucket that shrinks, other bucket bounds) the router
 * restarted between the readings, and the current reading alone is the window, as
 * Prometheus' `increase()` does. (A restart followed by more traffic than before can look
 * like growth: the window then undercounts; one interval later it is right again.)
 *   - previous 100 requests / 2 errors, current 140 / 12 → window 40 requests, 10 errors, 25.0%.
 *   - previous 100 / 2, current 30 / 1 (restart) → window 30 / 1.
 *   - previous 10 / 0, current 10 / 3 (restart: 3 errors in 0 requests) → window 10 / 3.
 *   - p99 of the window: the bucket that holds the 99th percentile of the bucket differences,
 *     interpolated linearly inside it. Window buckets ≤0.1: 50, ≤0.25: 100, +Inf: 100 →
 *     rank 99 lies in (0.1, 0.25], 49/50 of the way → 247 ms. A rank in the +Inf bucket
 *     gives the highest finite bound (as Prometheus' histogram_quantile). No observations → null.
 *
 * Verdict (`judgeCanary`), on one window of the canary and of the primary (the version that
 * served before the rollout), with the spec's thresholds:
 *  1. Fewer than `min_requests` canary requests → inconclusive: too little traffic to judge
 *     ("too little traffic to judge: 3 requests < 20"). No threshold is looked at.
 *  2. Each configured threshold (`max_error_rate`, `max_p99_latency_ms`) is a check. It is
 *     breached when the canary's figure is strictly above it. A check is
 *       - pass when not breached;
 *       - fail when breached and the canary is strictly worse than the primary on that
 *         figure, or the primary cannot be compared (absent, fewer than `min_requests`
 *         requests, or no figure);
 *       - inconclusive when breached but the primary is as bad or worse: the whole service is
 *         degraded (a backend, the network), so hold, neither promote nor blame the canary;
 *       - inconclusive when the canary has no figure (no request, no latency observation).
 *  3. The verdict: fail if any check fails, else inconclusive if any is, else pass.
 *  Worked examples, min_requests 20, max_error_rate 0.05, max_p99_latency_ms 500:
 *   - canary 3 requests                                 → inconclusive (too little traffic)
 *   - canary 40 req, 5 errors (12.5%); primary 400 req, 0 errors → fail
 *     ("canary error rate 12.5% > max 5% (primary 0.0%)")
 *   - canary 40 req, 5 errors (12.5%); primary 400 req, 60 errors (15.0%) → inconclusive
 *   - canary 40 req, 5 errors (12.5%); primary 10 req (too few to compare) → fail
 *   - canary 40 req, 1 error (2.5%), p99 120 ms        → pass
 *   - canary 40 req, 0 errors, p99 900 ms; primary p99 130 ms → fail (latency)
 *   - one check fails, the other is inconclusive       → fail
 *   - no threshold configured (the spec refuses that)  → pass, no checks
 *
 * Tally (`tallyChecks`): verdicts are counted over the whole rollout; more failed checks than
 * `failure_limit` → rollback (Argo's failureLimit: limit 0 rolls back at the first failure,
 * limit 2 at the third). Inconclusive checks hold the rollout but never roll it back.
 */
import type { AnalysisSpec } from '../spec/types';

/** One bucket of a cumulative histogram: observations ≤ `le` seconds; the last bound is `'+Inf'`. */
export interface HistogramBucket {
  le: number | '+Inf';
  count: number;
}

/** A version's cumulative counters since the router started. */
export interface VersionCounters {
  /** Answered requests (any status). */
  requests: number;
  errors5xx: number;
  /** Time to first byte, cumulative buckets sorted by `le`, the last one `'+Inf'`; [] before any observation. */
  ttfbBuckets: HistogramBucket[];
}

/** A reading of one service's counters, keyed by version number as a string ("1", "2"). */
export type StatsSnapshot = Record<string, VersionCounters>;

/** One version's traffic between two readings. */
export interface VersionWindow {
  requests: number;
  errors5xx: number;
  /** errors5xx / requests; null without requests. */
  errorRate: number | null;
  /** p99 time to first byte in ms; null without observations. */
  p99Ms: number | null;
}

export type Verdict = 'pass' | 'fail' | 'inconclusive';

export type AnalysisThresholds = Pick<AnalysisSpec, 'max_error_rate' | 'max_p99_latency_ms' | 'min_requests'>;

export interface JudgeCanaryInput {
  canary: VersionWindow;
  /** The primary's window; absent when no primary served (nothing to compare with). */
  primary?: VersionWindow;
  thresholds: AnalysisThresholds;
}

/** One threshold's check: the figures compared and what came of it. */
export interface AnalysisCheck {
  metric: 'error_rate' | 'p99_latency_ms';
  max: number;
  canary: number | null;
  /** The primary's figure, null when it cannot be compared (absent or too little traffic). */
  primary: number | null;
  outcome: Verdict;
}

export interface CanaryJudgement {
  verdict: Verdict;
  /** Short human sentences with the figures, one per check (or the one reason there was no check). */
  reasons: string[];
  /** Empty when the canary had too little traffic to judge. */
  checks: AnalysisCheck[];
  figures: { canary: VersionWindow; primary: VersionWindow | null };
}

export interface CheckTally {
  passed: number;
  failed: number;
  inconclusive: number;
}

/** The tally before the first check. */
export const NO_CHECKS: CheckTally = Object.freeze({ passed: 0, failed: 0, inconclusive: 0 });

const P99 = 0.99;

/** The window of one version's traffic between two readings; `previous` undefined: all of `current`. */
export function windowBetween(previous: VersionCounters | undefined, current: VersionCounters): VersionWindow {
  const difference = previous && differenceOf(previous, current);
  const { requests, errors5xx, ttfbBuckets } = difference ?? current;
  return { requests, errors5xx, errorRate: requests > 0 ? errors5xx / requests : null, p99Ms: quantileMs(ttfbBuckets, P99) };
}

/**
 * The window of `version` between two snapshots of a service. A version missing from the
 * current snapshot had no traffic since the router started: an empty window.
 */
export function versionWindow(previous: StatsSnapshot | undefined, current: StatsSnapshot, version: number): VersionWindow {
  const key = String(version);
  return windowBetween(previous?.[key], current[key] ?? { requests: 0, errors5xx: 0, ttfbBuckets: [] });
}

/**
 * `current - previous`, or undefined when that is not traffic that could have happened (a
 * counter went down, more errors or latency observations than requests, a bucket bound changed
 * or a cumulative bucket shrank): the router restarted in between.
 */
function differenceOf(previous: VersionCounters, current: VersionCounters): VersionCounters | undefined {
  const requests = current.requests - previous.requests;
  const errors5xx = current.errors5xx - previous.errors5xx;
  if (requests < 0 || errors5xx < 0 || errors5xx > requests) return undefined;
  // No observation before: the histogram (created at the first one) counted from zero.
  const before = previous.ttfbBuckets.length === 0 ? current.ttfbBuckets.map((b) => ({ le: b.le, count: 0 })) : previous.ttfbBuckets;
  if (current.ttfbBuckets.length !== before.length) return undefined;
  const ttfbBuckets: HistogramBucket[] = [];
  for (const [i, b] of current.ttfbBuckets.entries()) {
    const count = b.count - before[i].count;
    if (b.le !== before[i].le || count < (ttfbBuckets[i - 1]?.count ?? 0)) return undefined;
    ttfbBuckets.push({ le: b.le, count });
  }
  return (ttfbBuckets[ttfbBuckets.length - 1]?.count ?? 0) > requests ? undefined : { requests, errors5xx, ttfbBuckets };
}

/** The q-quantile in ms of cumulative buckets, interpolated inside its bucket; null without observations. */
function quantileMs(buckets: HistogramBucket[], q: number): number | null {
  const total = buckets[buckets.length - 1]?.count ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = { le: 0, count: 0 };
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === '+Inf') return lower.le * 1000;
      const inBucket = b.count - lower.count;
      const fraction = inBucket <= 0 ? 1 : (rank - lower.count) / inBucket;
      return (lower.le + (b.le - lower.le) * fraction) * 1000;
    }
    if (b.le !== '+Inf') lower = { le: b.le, count: b.count };
  }
  return lower.le * 1000;
}

/** The verdict on one interval of canary traffic (rules and examples at the top of this file). */
export function judgeCanary(input: JudgeCanaryInput): CanaryJudgement {
  const { canary, thresholds } = input;
  const figures = { canary, primary: input.primary ?? null };
  if (canary.requests < thresholds.min_requests) {
    return { verdict: 'inconclusive', reasons: [`too little traffic to judge: ${canary.requests} requests < ${thresholds.min_requests}`], checks: [], figures };
  }
  const primary = input.primary && input.primary.requests >= thresholds.min_requests ? input.primary : undefined;
  const unlessPrimary = (figure: number | null): { primary: number | null; missing: string } => {
    if (!input.primary) return { primary: null, missing: 'no primary to compare' };
    if (!primary) return { primary: null, missing: `primary too little traffic to compare: ${input.primary.requests} requests < ${thresholds.min_requests}` };
    return { primary: figure, missing: 'no primary figure to compare' };
  };

  const judged: Array<{ check: AnalysisCheck; reason: string }> = [];
  if (thresholds.max_error_rate !== undefined) {
    judged.push(judgeFigure('error_rate', 'error rate', PERCENT, thresholds.max_error_rate, canary.errorRate, unlessPrimary(input.primary?.errorRate ?? null)));
  }
  if (thresholds.max_p99_latency_ms !== undefined) {
    judged.push(judgeFigure('p99_latency_ms', 'p99 latency', MS, thresholds.max_p99_latency_ms, canary.p99Ms, unlessPrimary(input.primary?.p99Ms ?? null)));
  }
  const outcomes = judged.map((j) => j.check.outcome);
  const verdict: Verdict = outcomes.includes('fail') ? 'fail' : outcomes.includes('inconclusive') ? 'inconclusive' : 'pass';
  return { verdict, reasons: judged.map((j) => j.reason), checks: judged.map((j) => j.check), figures };
}

function judgeFigure(
  metric: AnalysisCheck['metric'],
  label: string,
  unit: Unit,
  max: number,
  canary: number | null,
  { primary, missing }: { primary: number | null; missing: string },
): { check: AnalysisCheck; reason: string } {
  const check = (outcome: Verdict, reason: string) => ({ check: { metric, max, canary, primary, outcome }, reason });
  if (canary === null) return check('inconclusive', `no canary ${label} figure to judge (max ${unit.limit(max)})`);
  if (canary <= max) return check('pass', `canary ${label} ${unit.figure(canary, max)} ≤ max ${unit.limit(max)}`);
  const breach = `canary ${label} ${unit.figure(canary, max)} > max ${unit.limit(max)}`;
  if (primary === null) return check('fail', `${breach} (${missing})`);
  if (canary > primary) return check('fail', `${breach} (primary ${unit.figure(primary, max)})`);
  return check('inconclusive', `${breach}, but primary is as bad (${unit.figure(primary, max)}): the service is degraded, not the canary`);
}

/** How a figure and its limit are written: "12.5%" / "5%", "850 ms" / "500 ms". */
interface Unit {
  figure(value: number, max: number): string;
  limit(max: number): string;
}
const PERCENT: Unit = { figure: (v, max) => `${decimals(v * 100, 1, max * 100)}%`, limit: (max) => `${Number((max * 100).toFixed(3))}%` };
const MS: Unit = { figure: (v, max) => `${decimals(v, v >= 10 ? 0 : 1, max)} ms`, limit: (max) => `${Number(max.toFixed(3))} ms` };

/** `value` with `digits` decimals, or more where that few would show it equal to a `max` it differs from (5.04% vs 5%). */
function decimals(value: number, digits: number, max: number): string {
  let d = digits;
  while (d < 6 && value !== max && Number(value.toFixed(d)) === Number(max.toFixed(d))) d++;
  return value.toFixed(d);
}

/**
 * Counts one more verdict; `rollback` when failed checks exceed `failureLimit`.
 * `{passed 3, failed 0, inconclusive 1}` + fail, limit 0 → failed 1, rollback.
 */
export function tallyChecks(previous: CheckTally, verdict: Verdict, failureLimit: number): CheckTally & { rollback: boolean } {
  const next: CheckTally = {
    passed: previous.passed + (verdict === 'pass' ? 1 : 0),
    failed: previous.failed + (verdict === 'fail' ? 1 : 0),
    inconclusive: previous.inconclusive + (verdict === 'inconclusive' ? 1 : 0),
  };
  return { ...next, rollback: next.failed > failureLimit };
}
