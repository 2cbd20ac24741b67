/**
 * Canary analysis, the pure part: worked examples (table-driven, named) of the window between
 * two readings, the verdict and the tally, then properties over random traffic.
 */
import fc from 'fast-check';
import { judgeCanary, NO_CHECKS, tallyChecks, versionWindow, windowBetween } from '../../src/plan';
import type { AnalysisThresholds, CheckTally, HistogramBucket, StatsSnapshot, Verdict, VersionCounters, VersionWindow } from '../../src/plan';

/** The router's time-to-first-byte bucket bounds, in seconds. */
const BOUNDS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Cumulative buckets of these observations (seconds), as the router exposes them. */
function bucketsOf(observationsS: number[], bounds = BOUNDS_S): HistogramBucket[] {
  return [...bounds.map((le) => ({ le, count: observationsS.filter((o) => o <= le).length })), { le: '+Inf' as const, count: observationsS.length }];
}

/** Explicit cumulative buckets: `{0.1: 50, 0.25: 100}` plus +Inf = the last count (or `inf`). */
function buckets(counts: Record<number, number>, inf?: number): HistogramBucket[] {
  const finite = Object.entries(counts)
    .map(([le, count]) => ({ le: Number(le), count }))
    .sort((a, b) => a.le - b.le);
  return [...finite, { le: '+Inf', count: inf ?? finite[finite.length - 1]?.count ?? 0 }];
}

function counters(requests: number, errors5xx: number, ttfbBuckets: HistogramBucket[] = []): VersionCounters {
  return { requests, errors5xx, ttfbBuckets };
}

function win(requests: number, errors5xx: number, p99Ms: number | null): VersionWindow {
  return { requests, errors5xx, errorRate: requests > 0 ? errors5xx / requests : null, p99Ms };
}

describe('windowBetween worked examples', () => {
  const cases: Array<{ name: string; previous?: VersionCounters; current: VersionCounters; expected: VersionWindow }> = [
    { name: 'first reading: the whole of current', current: counters(40, 2, buckets({ 0.1: 40 })), expected: win(40, 2, 99) },
    { name: '100/2 then 140/12 → 40 requests, 10 errors, 25%', previous: counters(100, 2), current: counters(140, 12), expected: win(40, 10, null) },
    { name: 'identical readings → empty window', previous: counters(100, 2, buckets({ 0.1: 100 })), current: counters(100, 2, buckets({ 0.1: 100 })), expected: win(0, 0, null) },
    { name: 'router restart (100/2 then 30/1) → current is the window', previous: counters(100, 2, buckets({ 0.1: 100 })), current: counters(30, 1, buckets({ 0.1: 30 })), expected: win(30, 1, 99) },
    { name: 'restart seen only in errors (10/5 then 12/1) → current', previous: counters(10, 5), current: counters(12, 1), expected: win(12, 1, null) },
    { name: 'restart: 3 more errors in 0 more requests (10/0 then 10/3) → current', previous: counters(10, 0), current: counters(10, 3), expected: win(10, 3, null) },
    {
      name: 'restart: a window bucket that shrinks (≤0.1 +3, ≤1 +0) → current',
      previous: counters(10, 0, buckets({ 0.1: 5, 1: 10 })),
      current: counters(13, 0, buckets({ 0.1: 8, 1: 10 }, 13)),
      // current alone: rank 12.87 of 13 in the +Inf bucket → the highest finite bound
      expected: win(13, 0, 1000),
    },
    { name: 'restart: more latency observations than requests (10 then 12, +Inf 10 then 13) → current', previous: counters(10, 0, buckets({ 0.1: 10 })), current: counters(12, 0, buckets({ 0.1: 10 }, 13)), expected: win(12, 0, 100) },
    {
      name: 'restart seen only in a bucket going down → current',
      previous: counters(10, 0, buckets({ 0.1: 10, 1: 10 })),
      current: counters(12, 0, buckets({ 0.1: 2, 1: 12 })),
      // rank 11.88 of 12 in (0.1, 1]: 9.88/10 of the way → 0.1 + 0.9 × 0.988 = 0.9892 s
      expected: win(12, 0, 989.2),
    },
    { name: 'bucket bounds changed (a new router) → current', previous: counters(10, 0, buckets({ 0.1: 10 })), current: counters(20, 0, buckets({ 0.2: 20 })), expected: win(20, 0, 198) },
    { name: 'no buckets before, some now → all of them', previous: counters(0, 0), current: counters(10, 0, buckets({ 0.1: 10 })), expected: win(10, 0, 99) },
    {
      name: 'p99 interpolated in the window: ≤0.1: 50, ≤0.25: 100 → 247 ms',
      previous: counters(100, 0, buckets({ 0.1: 100, 0.25: 100 })),
      current: counters(200, 0, buckets({ 0.1: 150, 0.25: 200 })),
      expected: win(100, 0, 247),
    },
    { name: 'p99 in the +Inf bucket → the highest finite bound', current: counters(100, 0, buckets({ 0.1: 1 }, 100)), expected: win(100, 0, 100) },
    { name: 'p99 in the first bucket → interpolated from 0', current: counters(100, 0, buckets({ 0.01: 100 })), expected: win(100, 0, 9.9) },
    { name: 'requests without latency observations → p99 null', current: counters(5, 5), expected: win(5, 5, null) },
  ];
  test.each(cases)('$name', ({ previous, current, expected }) => {
    const w = windowBetween(previous, current);
    expect({ ...w, p99Ms: w.p99Ms === null ? null : Math.round(w.p99Ms * 1000) / 1000 }).toEqual(expected);
  });
});

describe('versionWindow', () => {
  test.each<{ name: string; previous: StatsSnapshot | undefined; current: StatsSnapshot; expected: VersionWindow }>([
    { name: 'version in both snapshots', previous: { '2': counters(10, 1) }, current: { '2': counters(30, 1) }, expected: win(20, 0, null) },
    { name: 'no previous snapshot', previous: undefined, current: { '2': counters(30, 3) }, expected: win(30, 3, null) },
    { name: 'version not in the current snapshot (no traffic yet)', previous: undefined, current: { '1': counters(30, 3) }, expected: win(0, 0, null) },
    { name: 'version gone after a restart without its traffic', previous: { '2': counters(30, 3, buckets({ 0.1: 30 })) }, current: {}, expected: win(0, 0, null) },
  ])('$name', ({ previous, current, expected }) => {
    expect(versionWindow(previous, current, 2)).toEqual(expected);
  });
});

const thresholds: AnalysisThresholds = { min_requests: 20, max_error_rate: 0.05, max_p99_latency_ms: 500 };

describe('judgeCanary worked examples (min_requests 20, max_error_rate 5%, max p99 500 ms)', () => {
  const cases: Array<{ name: string; canary: VersionWindow; primary?: VersionWindow; thresholds?: AnalysisThresholds; verdict: Verdict; reasons: string[] }> = [
    {
      name: '3 canary requests → inconclusive, whatever the figures',
      canary: win(3, 3, 9000),
      primary: win(400, 0, 100),
      verdict: 'inconclusive',
      reasons: ['too little traffic to judge: 3 requests < 20'],
    },
    {
      name: 'healthy canary → pass',
      canary: win(40, 1, 120),
      primary: win(400, 0, 100),
      verdict: 'pass',
      reasons: ['canary error rate 2.5% ≤ max 5%', 'canary p99 latency 120 ms ≤ max 500 ms'],
    },
    {
      name: 'exactly at the thresholds → pass (a breach is strictly above)',
      canary: win(40, 2, 500),
      verdict: 'pass',
      reasons: ['canary error rate 5.0% ≤ max 5%', 'canary p99 latency 500 ms ≤ max 500 ms'],
    },
    {
      name: '12.5% errors vs a healthy primary → fail',
      canary: win(40, 5, 120),
      primary: win(400, 0, 100),
      verdict: 'fail',
      reasons: ['canary error rate 12.5% > max 5% (primary 0.0%)', 'canary p99 latency 120 ms ≤ max 500 ms'],
    },
    {
      name: '12.5% errors, primary 15% → inconclusive (the service is degraded)',
      canary: win(40, 5, 120),
      primary: win(400, 60, 100),
      verdict: 'inconclusive',
      reasons: ['canary error rate 12.5% > max 5%, but primary is as bad (15.0%): the service is degraded, not the canary', 'canary p99 latency 120 ms ≤ max 500 ms'],
    },
    {
      name: 'canary and primary equally bad → inconclusive',
      canary: win(40, 5, 120),
      primary: win(80, 10, 100),
      verdict: 'inconclusive',
      reasons: ['canary error rate 12.5% > max 5%, but primary is as bad (12.5%): the service is degraded, not the canary', 'canary p99 latency 120 ms ≤ max 500 ms'],
    },
    {
      name: 'breach, primary with too little traffic to compare → fail',
      canary: win(40, 5, 120),
      primary: win(10, 5, 100),
      verdict: 'fail',
      reasons: ['canary error rate 12.5% > max 5% (primary too little traffic to compare: 10 requests < 20)', 'canary p99 latency 120 ms ≤ max 500 ms'],
    },
    {
      name: 'breach, no primary → fail',
      canary: win(40, 5, 120),
      verdict: 'fail',
      reasons: ['canary error rate 12.5% > max 5% (no primary to compare)', 'canary p99 latency 120 ms ≤ max 500 ms'],
    },
    {
      name: 'slow canary vs a fast primary → fail on latency',
      canary: win(40, 0, 900),
      primary: win(400, 0, 130),
      verdict: 'fail',
      reasons: ['canary error rate 0.0% ≤ max 5%', 'canary p99 latency 900 ms > max 500 ms (primary 130 ms)'],
    },
    {
      name: 'slow canary, slower primary → inconclusive',
      canary: win(40, 0, 900),
      primary: win(400, 0, 1200),
      verdict: 'inconclusive',
      reasons: ['canary error rate 0.0% ≤ max 5%', 'canary p99 latency 900 ms > max 500 ms, but primary is as bad (1200 ms): the service is degraded, not the canary'],
    },
    {
      name: 'one check fails, the other inconclusive → fail',
      canary: win(40, 5, 900),
      primary: win(400, 0, 1200),
      verdict: 'fail',
      reasons: ['canary error rate 12.5% > max 5% (primary 0.0%)', 'canary p99 latency 900 ms > max 500 ms, but primary is as bad (1200 ms): the service is degraded, not the canary'],
    },
    {
      name: 'breach, primary has traffic but no latency figure → fail',
      canary: win(40, 0, 900),
      primary: win(400, 0, null),
      verdict: 'fail',
      reasons: ['canary error rate 0.0% ≤ max 5%', 'canary p99 latency 900 ms > max 500 ms (no primary figure to compare)'],
    },
    {
      name: 'canary without latency observations → inconclusive on latency',
      canary: win(40, 0, null),
      primary: win(400, 0, 100),
      verdict: 'inconclusive',
      reasons: ['canary error rate 0.0% ≤ max 5%', 'no canary p99 latency figure to judge (max 500 ms)'],
    },
    {
      name: 'a figure that would round to the max shows more decimals',
      canary: win(10000, 504, 500.4),
      primary: win(400, 0, 100),
      verdict: 'fail',
      reasons: ['canary error rate 5.04% > max 5% (primary 0.0%)', 'canary p99 latency 500.4 ms > max 500 ms (primary 100 ms)'],
    },
    {
      name: 'small latencies keep one decimal',
      canary: win(40, 0, 2.5),
      thresholds: { min_requests: 20, max_p99_latency_ms: 2 },
      verdict: 'fail',
      reasons: ['canary p99 latency 2.5 ms > max 2 ms (no primary to compare)'],
    },
    {
      name: 'error rate only, a fractional max',
      canary: win(1000, 2, 9000),
      thresholds: { min_requests: 20, max_error_rate: 0.001 },
      verdict: 'fail',
      reasons: ['canary error rate 0.2% > max 0.1% (no primary to compare)'],
    },
    {
      name: 'min_requests 0 and no traffic → inconclusive (no figure)',
      canary: win(0, 0, null),
      thresholds: { min_requests: 0, max_error_rate: 0.05 },
      verdict: 'inconclusive',
      reasons: ['no canary error rate figure to judge (max 5%)'],
    },
    { name: 'no threshold configured → pass without checks', canary: win(40, 40, 9000), thresholds: { min_requests: 20 }, verdict: 'pass', reasons: [] },
  ];
  test.each(cases)('$name', ({ canary, primary, verdict, reasons, ...rest }) => {
    const judgement = judgeCanary({ canary, primary, thresholds: rest.thresholds ?? thresholds });
    expect({ verdict: judgement.verdict, reasons: judgement.reasons }).toEqual({ verdict, reasons });
    expect(judgement.figures).toEqual({ canary, primary: primary ?? null });
  });

  test('checks carry the figures compared', () => {
    const judgement = judgeCanary({ canary: win(40, 5, 900), primary: win(400, 60, 100), thresholds });
    expect(judgement.checks).toEqual([
      { metric: 'error_rate', max: 0.05, canary: 0.125, primary: 0.15, outcome: 'inconclusive' },
      { metric: 'p99_latency_ms', max: 500, canary: 900, primary: 100, outcome: 'fail' },
    ]);
    expect(judgeCanary({ canary: win(40, 5, 900), primary: win(3, 3, 9000), thresholds }).checks.map((c) => c.primary)).toEqual([null, null]);
    expect(judgeCanary({ canary: win(3, 0, 1), thresholds }).checks).toEqual([]);
  });

  test('a judgement survives JSON (a Temporal payload) unchanged', () => {
    const judgement = judgeCanary({ canary: win(40, 5, 900), primary: win(400, 0, null), thresholds });
    expect(JSON.parse(JSON.stringify(judgement))).toEqual(judgement);
  });
});

describe('tallyChecks worked examples', () => {
  test.each<{ name: string; previous: CheckTally; verdict: Verdict; limit: number; expected: CheckTally & { rollback: boolean } }>([
    { name: 'first failure, limit 0 → rollback', previous: NO_CHECKS, verdict: 'fail', limit: 0, expected: { passed: 0, failed: 1, inconclusive: 0, rollback: true } },
    { name: 'second failure, limit 2 → hold on', previous: { passed: 3, failed: 1, inconclusive: 0 }, verdict: 'fail', limit: 2, expected: { passed: 3, failed: 2, inconclusive: 0, rollback: false } },
    { name: 'third failure, limit 2 → rollback', previous: { passed: 3, failed: 2, inconclusive: 0 }, verdict: 'fail', limit: 2, expected: { passed: 3, failed: 3, inconclusive: 0, rollback: true } },
    { name: 'a pass after a failure, limit 1', previous: { passed: 0, failed: 1, inconclusive: 0 }, verdict: 'pass', limit: 1, expected: { passed: 1, failed: 1, inconclusive: 0, rollback: false } },
    { name: 'inconclusive checks never roll back', previous: { passed: 0, failed: 0, inconclusive: 99 }, verdict: 'inconclusive', limit: 0, expected: { passed: 0, failed: 0, inconclusive: 100, rollback: false } },
  ])('$name', ({ previous, verdict, limit, expected }) => {
    expect(tallyChecks(previous, verdict, limit)).toEqual(expected);
  });
});

describe('properties', () => {
  /** Observations in seconds, spread over and beyond the router's buckets (some on a bound). */
  const observation = fc.oneof(fc.double({ min: 0, max: 400, noNaN: true }), fc.constantFrom(...BOUNDS_S), fc.double({ min: 0, max: 0.2, noNaN: true }));
  const request = fc.record({ ttfbS: observation, error: fc.boolean() });
  const traffic = fc.array(request, { maxLength: 300 });

  function countersOf(requests: Array<{ ttfbS: number; error: boolean }>): VersionCounters {
    return counters(requests.length, requests.filter((r) => r.error).length, requests.length ? bucketsOf(requests.map((r) => r.ttfbS)) : []);
  }

  const window = fc
    .record({ requests: fc.integer({ min: 0, max: 10_000 }), errorShare: fc.double({ min: 0, max: 1, noNaN: true }), p99Ms: fc.option(fc.double({ min: 0, max: 300_000, noNaN: true })) })
    .map(({ requests, errorShare, p99Ms }) => win(requests, Math.floor(requests * errorShare), requests > 0 ? p99Ms : null));
  const anyThresholds: fc.Arbitrary<AnalysisThresholds> = fc.record(
    { min_requests: fc.integer({ min: 0, max: 500 }), max_error_rate: fc.double({ min: 0, max: 1, noNaN: true }), max_p99_latency_ms: fc.double({ min: 0.001, max: 100_000, noNaN: true }) },
    { requiredKeys: ['min_requests'] },
  );

  test('two readings: the window is exactly the traffic in between, p99 inside the bucket of the true p99', () => {
    fc.assert(
      fc.property(traffic, traffic, (before, during) => {
        const w = windowBetween(countersOf(before), countersOf([...before, ...during]));
        expect(w.requests).toBe(during.length);
        expect(w.errors5xx).toBe(during.filter((r) => r.error).length);
        expect(w.errorRate).toBe(during.length ? w.errors5xx / during.length : null);
        if (during.length === 0) return expect(w.p99Ms).toBeNull();
        const sorted = during.map((r) => r.ttfbS).sort((a, b) => a - b);
        const trueP99 = sorted[Math.ceil(0.99 * sorted.length) - 1];
        const upper = BOUNDS_S.find((b) => trueP99 <= b);
        const lower = [...BOUNDS_S].reverse().find((b) => b < trueP99) ?? 0;
        expect(w.p99Ms).not.toBeNull();
        expect(w.p99Ms!).toBeGreaterThanOrEqual(lower * 1000 - 1e-9);
        expect(w.p99Ms!).toBeLessThanOrEqual((upper ?? lower) * 1000 + 1e-9);
      }),
    );
  });

  test('identical readings: an empty window', () => {
    fc.assert(
      fc.property(traffic, (seen) => {
        const c = countersOf(seen);
        expect(windowBetween(c, structuredClone(c))).toEqual({ requests: 0, errors5xx: 0, errorRate: null, p99Ms: null });
      }),
    );
  });

  test('a router restart between readings: the current reading is the window', () => {
    fc.assert(
      fc.property(traffic, traffic, (before, after) => {
        fc.pre(after.length < before.length || after.filter((r) => r.error).length < before.filter((r) => r.error).length);
        const current = countersOf(after);
        expect(windowBetween(countersOf(before), current)).toEqual(windowBetween(undefined, current));
      }),
    );
  });

  test('windows never go negative and survive JSON', () => {
    fc.assert(
      fc.property(traffic, traffic, (a, b) => {
        const [previous, current] = [countersOf(a), countersOf(b)];
        const w = windowBetween(JSON.parse(JSON.stringify(previous)), JSON.parse(JSON.stringify(current)));
        expect(w.requests).toBeGreaterThanOrEqual(0);
        expect(w.errors5xx).toBeGreaterThanOrEqual(0);
        expect(w.errors5xx).toBeLessThanOrEqual(w.requests);
        if (w.p99Ms !== null) expect(w.p99Ms).toBeLessThanOrEqual(BOUNDS_S[BOUNDS_S.length - 1] * 1000);
        expect(w).toEqual(windowBetween(previous, current));
      }),
    );
  });

  test('fewer than min_requests canary requests: always inconclusive, never pass', () => {
    fc.assert(
      fc.property(window, fc.option(window, { nil: undefined }), anyThresholds, (canary, primary, t) => {
        fc.pre(canary.requests < t.min_requests);
        const j = judgeCanary({ canary, primary, thresholds: t });
        expect(j.verdict).toBe('inconclusive');
        expect(j.reasons).toEqual([`too little traffic to judge: ${canary.requests} requests < ${t.min_requests}`]);
      }),
    );
  });

  test('a canary with no errors and latency within the threshold never fails', () => {
    fc.assert(
      fc.property(window, fc.option(window, { nil: undefined }), anyThresholds, (w, primary, t) => {
        const canary = { ...w, errors5xx: 0, errorRate: w.requests > 0 ? 0 : null, p99Ms: w.p99Ms === null ? null : Math.min(w.p99Ms, t.max_p99_latency_ms ?? Infinity) };
        expect(judgeCanary({ canary, primary, thresholds: t }).verdict).not.toBe('fail');
      }),
    );
  });

  test('enough traffic and every figure within its threshold: pass', () => {
    fc.assert(
      fc.property(window, fc.option(window, { nil: undefined }), anyThresholds, (canary, primary, t) => {
        fc.pre(canary.requests >= t.min_requests && canary.errorRate !== null && canary.p99Ms !== null);
        fc.pre(canary.errorRate <= (t.max_error_rate ?? 1) && canary.p99Ms <= (t.max_p99_latency_ms ?? Infinity));
        expect(judgeCanary({ canary, primary, thresholds: t }).verdict).toBe('pass');
      }),
    );
  });

  test('a comparable primary at least as bad on every figure: never fail (the canary is not blamed)', () => {
    fc.assert(
      fc.property(window, window, anyThresholds, (canary, p, t) => {
        const primary = { ...p, requests: Math.max(p.requests, t.min_requests, 1), errorRate: Math.max(p.errorRate ?? 0, canary.errorRate ?? 0), p99Ms: Math.max(p.p99Ms ?? 0, canary.p99Ms ?? 0) };
        expect(judgeCanary({ canary, primary, thresholds: t }).verdict).not.toBe('fail');
      }),
    );
  });

  test('a breach with no primary to compare: fail', () => {
    fc.assert(
      fc.property(window, anyThresholds, (canary, t) => {
        fc.pre(canary.requests >= t.min_requests && t.max_error_rate !== undefined && canary.errorRate !== null && canary.errorRate > t.max_error_rate);
        expect(judgeCanary({ canary, thresholds: t }).verdict).toBe('fail');
      }),
    );
  });

  test('verdict = worst check; one reason per check', () => {
    fc.assert(
      fc.property(window, fc.option(window, { nil: undefined }), anyThresholds, (canary, primary, t) => {
        const j = judgeCanary({ canary, primary, thresholds: t });
        expect(j.reasons).toHaveLength(Math.max(j.checks.length, canary.requests < t.min_requests ? 1 : 0));
        const outcomes = j.checks.map((c) => c.outcome);
        const worst = outcomes.includes('fail') ? 'fail' : outcomes.includes('inconclusive') ? 'inconclusive' : 'pass';
        if (canary.requests >= t.min_requests) expect(j.verdict).toBe(worst);
      }),
    );
  });

  test('tally: counts add up; rollback exactly when failures exceed the limit, and it stays', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom<Verdict>('pass', 'fail', 'inconclusive'), { maxLength: 50 }), fc.integer({ min: 0, max: 5 }), (verdicts, limit) => {
        let tally: CheckTally = NO_CHECKS;
        let rolledBack = false;
        verdicts.forEach((verdict, i) => {
          const next = tallyChecks(tally, verdict, limit);
          const failedSoFar = verdicts.slice(0, i + 1).filter((v) => v === 'fail').length;
          expect(next.passed + next.failed + next.inconclusive).toBe(i + 1);
          expect(next.failed).toBe(failedSoFar);
          expect(next.rollback).toBe(failedSoFar > limit);
          if (rolledBack) expect(next.rollback).toBe(true);
          rolledBack = next.rollback;
          tally = next;
        });
      }),
    );
  });
});
