/**
 * The rollout estimate of `rollout plan` (estimateRollout): worked examples over the stages the
 * real planners produce (simulateRollout), then fast-check properties over random specs, load
 * times, GPU counts and prices.
 */
import fc from 'fast-check';
import { canarySteps, estimateRollout, firstCheckAfter, simulateRollout, type EstimateInput, type PlanStage, type RolloutEstimate } from '../../src/plan';
import { parseDurationMs } from '../../src/spec/duration';
import { parseSpec } from '../../src/spec/load';
import type { ServiceSpec } from '../../src/spec/types';

function spec(yaml: string): ServiceSpec {
  const r = parseSpec(`name: llm\nrun: serve --port $PORT\n${yaml}`);
  if (!r.ok) throw new Error(`bad test spec: ${JSON.stringify(r.issues)}`);
  return r.spec;
}

interface Costing {
  loadSeconds: number;
  gpusPerReplica?: number;
  usdPerReplicaHour?: number;
}

/** The estimate of rolling `to` out over `from` (absent: a first deploy), as `rollout plan` makes it. */
function estimate(from: ServiceSpec | undefined, to: ServiceSpec, costing: Costing): RolloutEstimate {
  const stages = simulateRollout({ fromSpec: from, fromVersion: from ? 1 : 0, toSpec: to, toVersion: from ? 2 : 1 });
  return estimateRollout(inputFor(to, stages, costing));
}

function inputFor(to: ServiceSpec, stages: PlanStage[], costing: Costing): EstimateInput {
  const analysis = to.rollout.analysis;
  return {
    stages,
    steps: canarySteps(to),
    steadyReplicas: to.replicas,
    loadSeconds: costing.loadSeconds,
    analysisIntervalSeconds: analysis ? parseDurationMs(analysis.interval) / 1000 : undefined,
    gpusPerReplica: costing.gpusPerReplica ?? 0,
    usdPerReplicaHour: costing.usdPerReplicaHour,
  };
}

const stage = (canaryReplicas: number, primaryReplicas: number, more: Partial<PlanStage> = {}): PlanStage => ({
  canaryReplicas,
  canaryPercent: 0,
  primaryReplicas,
  primaryPercent: 100,
  note: '',
  ...more,
});

describe('estimateRollout: worked examples', () => {
  // Each row: the serving spec (undefined: first deploy), the new one, the load time, then the
  // expected duration in seconds and extra replica-seconds (× 3600 = replica-hours).
  test.each<[string, string | undefined, string, number, number, number]>([
    ['rolling, 2 replicas, surge 1: two launches of one, each with 3 alive', 'replicas: 2\n', 'replicas: 2\nenv: {M: b}\n', 60, 120, 120],
    ['rolling, 4 replicas, surge 2: two launches of two, 6 alive', 'replicas: 4\n', 'replicas: 4\nenv: {M: b}\nrollout: {max_surge: 2}\n', 60, 120, 240],
    ['rolling, surge 0, unavailable 1: never above the steady state', 'replicas: 2\n', 'replicas: 2\nenv: {M: b}\nrollout: {max_surge: 0, max_unavailable: 1}\n', 60, 120, 0],
    ['blue_green, 2 replicas: one launch of the whole fleet, 4 alive', 'replicas: 2\n', 'replicas: 2\nrollout: {strategy: blue_green}\n', 300, 300, 600],
    ['a first deploy: one launch, nothing above the steady state', undefined, 'replicas: 3\n', 90, 90, 0],
    ['canary 4, [10, pause 10m, 100]: 1 extra replica through 4 launches and the pause', 'replicas: 4\n', 'replicas: 4\nrollout: {strategy: canary, steps: [{weight: 10}, {pause: 10m}, {weight: 100}]}\n', 60, 840, 840],
    ['canary 4, [50, pause 10m]: the pause holds at 4 alive (2 + 2), no extra while it lasts', 'replicas: 4\n', 'replicas: 4\nrollout: {strategy: canary, steps: [{weight: 50}, {pause: 10m}]}\n', 60, 840, 240],
    ['constrained surge 50% of 2: one extra replica per launch', 'replicas: 2\n', 'replicas: 2\nenv: {M: b}\nrollout: {max_surge_percent: 50}\n', 60, 120, 120],
    ['load time 0: only the pause counts', 'replicas: 4\n', 'replicas: 4\nrollout: {strategy: canary, steps: [{weight: 25}, {pause: 90s}]}\n', 0, 90, 0],
  ])('%s', (_name, from, to, loadSeconds, seconds, extraReplicaSeconds) => {
    const e = estimate(from === undefined ? undefined : spec(from), spec(to), { loadSeconds });
    expect(e.durationSeconds).toBe(seconds);
    expect(e.extraReplicaHours * 3600).toBeCloseTo(extraReplicaSeconds, 6);
    expect(e).toMatchObject({ indefinitePauses: 0, lowerBound: false });
  });

  test('GPU-hours and dollars: replica-hours × GPUs per replica, × the price of a replica-hour', () => {
    // blue_green of 2 × 4 GPUs (g5.12xlarge, $5.672/h), 300 s: 2 extra replicas for 300 s.
    const e = estimate(spec('replicas: 2\n'), spec('replicas: 2\nrollout: {strategy: blue_green}\n'), { loadSeconds: 300, gpusPerReplica: 4, usdPerReplicaHour: 5.672 });
    expect(e.extraReplicaHours).toBeCloseTo(1 / 6, 9);
    expect(e.extraGpuHours).toBeCloseTo(4 / 6, 9);
    expect(e.extraCostUsd).toBeCloseTo(5.672 / 6, 9);
  });

  test('no price: no dollar figure at all (not 0)', () => {
    const e = estimate(spec('replicas: 2\n'), spec('replicas: 2\nenv: {M: b}\n'), { loadSeconds: 60, gpusPerReplica: 8 });
    expect(e).not.toHaveProperty('extraCostUsd');
    expect(e.extraGpuHours).toBeCloseTo((8 * 120) / 3600, 9);
  });

  test('a pause until resumed: not counted, a lower bound, and what it holds above the steady state', () => {
    // weight 10 of 4: 1 canary beside 4 primaries (5 alive) while held.
    const e = estimate(spec('replicas: 4\n'), spec('replicas: 4\nrollout: {strategy: canary, steps: [{weight: 10}, {pause: {}}, {weight: 100}]}\n'), { loadSeconds: 60 });
    expect(e).toMatchObject({ durationSeconds: 240, indefinitePauses: 1, extraReplicasWhileHeld: 1, lowerBound: true });
    expect(e.extraReplicaHours * 3600).toBeCloseTo(240, 6);
  });

  test('analysis every 30 s: the first step waits for the first check after the baseline, taken when the canary first has traffic', () => {
    // 2 replicas, [50, 100]: launch (60 s, 3 alive) → traffic 50% at 60 s (baseline) → check at 90 s
    // (2 alive: the primary gave one up) → launch the second canary (60 s, 3 alive): 150 s.
    const to = spec('replicas: 2\nrollout: {strategy: canary, steps: [{weight: 50}], analysis: {interval: 30s, max_error_rate: 0.05}}\n');
    const e = estimate(spec('replicas: 2\n'), to, { loadSeconds: 60 });
    expect(e.durationSeconds).toBe(150);
    expect(e.extraReplicaHours * 3600).toBeCloseTo(120, 6);
  });

  test('analysis: a timed pause shorter than the interval lasts until the next check', () => {
    // [50, pause 10s, 100], interval 60 s, load 60 s: step 0 ends at the check at 120 s; the pause
    // (120–130 s) waits for the check at 180 s; then the last launch: 240 s.
    const to = spec('replicas: 2\nrollout: {strategy: canary, steps: [{weight: 50}, {pause: 10s}], analysis: {interval: 1m, max_error_rate: 0.05}}\n');
    expect(estimate(spec('replicas: 2\n'), to, { loadSeconds: 60 }).durationSeconds).toBe(240);
  });

  test('analysis does not gate a replica-led (rolling) rollout: the same as without', () => {
    const withAnalysis = spec('replicas: 2\nenv: {M: b}\nrollout: {analysis: {interval: 10m, max_error_rate: 0.05}}\n');
    expect(estimate(spec('replicas: 2\n'), withAnalysis, { loadSeconds: 60 }).durationSeconds).toBe(120);
  });

  test('an in-place scale (a stage of its own with `launched`): one load, nothing above the steady state', () => {
    const e = estimateRollout({ stages: [stage(0, 3, { launched: 1 })], steps: [{ weight: 100 }], steadyReplicas: 3, loadSeconds: 45, gpusPerReplica: 1 });
    expect(e).toMatchObject({ durationSeconds: 45, extraReplicaHours: 0, extraGpuHours: 0, lowerBound: false });
  });

  test('no stages (unchanged, or only a rollout section changed): nothing at all', () => {
    expect(estimateRollout({ stages: [], steps: [{ weight: 100 }], steadyReplicas: 2, loadSeconds: 600, gpusPerReplica: 1, usdPerReplicaHour: 1 })).toEqual({
      durationSeconds: 0,
      extraReplicaHours: 0,
      extraGpuHours: 0,
      extraCostUsd: 0,
      indefinitePauses: 0,
      extraReplicasWhileHeld: 0,
      lowerBound: false,
    });
  });

  test('a plan that stopped early: a lower bound, and steps never planned add nothing', () => {
    const stages = [stage(1, 4, { launched: 1, step: 0 }), stage(1, 4, { step: 0, truncated: true })];
    const steps = [{ weight: 10 }, { pause: { duration: '1h' } }, { weight: 100 }];
    const e = estimateRollout({ stages, steps, steadyReplicas: 4, loadSeconds: 60, gpusPerReplica: 0 });
    expect(e).toMatchObject({ durationSeconds: 60, lowerBound: true, indefinitePauses: 0 });
  });

  test.each([
    // [step start, baseline, interval, first check strictly after the step start]
    [0, 60, 60, 120],
    [120, 60, 60, 180],
    [150, 60, 60, 180],
    [60, 60, 30, 90],
    [61, 60, 30, 90],
  ])('firstCheckAfter(start %p, baseline %p, interval %p) = %p', (start, baseline, interval, expected) => {
    expect(firstCheckAfter(start, baseline, interval)).toBe(expected);
  });
});

describe('estimateRollout: properties', () => {
  const step = fc.oneof(
    fc.integer({ min: 1, max: 100 }).map((w) => `{weight: ${w}}`),
    fc.constantFrom('{pause: 30s}', '{pause: 5m}', '{pause: {}}'),
  );
  /** A valid spec pair: random size, strategy, surge/unavailable, steps, analysis. */
  const scenario = fc
    .record({
      fromReplicas: fc.integer({ min: 1, max: 6 }),
      replicas: fc.integer({ min: 1, max: 6 }),
      strategy: fc.constantFrom('rolling', 'blue_green', 'canary'),
      surge: fc.integer({ min: 0, max: 2 }),
      unavailable: fc.integer({ min: 0, max: 2 }),
      surgePercent: fc.option(fc.constantFrom(25, 50, 100), { nil: undefined }),
      steps: fc.array(step, { maxLength: 4 }),
      interval: fc.option(fc.constantFrom('10s', '1m', '5m'), { nil: undefined }),
      firstDeploy: fc.boolean(),
    })
    .map((c) => {
      const rollout = [`strategy: ${c.strategy}`, `max_surge: ${c.surge}`, `max_unavailable: ${c.unavailable}`];
      if (c.surgePercent !== undefined && c.strategy !== 'blue_green') rollout.push(`max_surge_percent: ${c.surgePercent}`);
      if (c.strategy === 'canary' && c.steps.length > 0) rollout.push(`steps: [${c.steps.join(', ')}]`);
      if (c.interval) rollout.push(`analysis: {interval: ${c.interval}, max_error_rate: 0.05}`);
      const to = parseSpec(`name: llm\nrun: serve --port $PORT\nreplicas: ${c.replicas}\nenv: {M: b}\nrollout: {${rollout.join(', ')}}\n`);
      return { to: to.ok ? to.spec : undefined, from: c.firstDeploy ? undefined : spec(`replicas: ${c.fromReplicas}\n`) };
    })
    .filter((s): s is { to: ServiceSpec; from: ServiceSpec | undefined } => s.to !== undefined);
  const load = fc.integer({ min: 0, max: 3600 });
  const costing = fc.record({ gpusPerReplica: fc.integer({ min: 0, max: 16 }), usdPerReplicaHour: fc.option(fc.double({ min: 0, max: 100, noNaN: true }), { nil: undefined }) });
  const stagesOf = (s: { to: ServiceSpec; from: ServiceSpec | undefined }): PlanStage[] =>
    simulateRollout({ fromSpec: s.from, fromVersion: s.from ? 1 : 0, toSpec: s.to, toVersion: s.from ? 2 : 1 });

  test('extras are never negative; GPU-hours = replica-hours × GPUs; dollars = replica-hours × price, only with a price', () => {
    fc.assert(
      fc.property(scenario, load, costing, (s, loadSeconds, c) => {
        const e = estimateRollout(inputFor(s.to, stagesOf(s), { loadSeconds, ...c }));
        expect(e.extraReplicaHours).toBeGreaterThanOrEqual(0);
        expect(Number.isFinite(e.durationSeconds)).toBe(true);
        expect(e.extraGpuHours).toBeCloseTo(e.extraReplicaHours * c.gpusPerReplica, 9);
        if (c.usdPerReplicaHour === undefined) expect(e).not.toHaveProperty('extraCostUsd');
        else expect(e.extraCostUsd).toBeCloseTo(e.extraReplicaHours * c.usdPerReplicaHour, 9);
      }),
    );
  });

  test('the duration grows with the load time; without analysis the extras do too', () => {
    fc.assert(
      fc.property(scenario, load, load, (s, a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        const stages = stagesOf(s);
        const short = estimateRollout(inputFor(s.to, stages, { loadSeconds: lo }));
        const long = estimateRollout(inputFor(s.to, stages, { loadSeconds: hi }));
        expect(long.durationSeconds).toBeGreaterThanOrEqual(short.durationSeconds - 1e-9);
        if (!s.to.rollout.analysis) expect(long.extraReplicaHours).toBeGreaterThanOrEqual(short.extraReplicaHours - 1e-12);
      }),
    );
  });

  test('every launch waits the load time; without analysis the duration is exactly the launches’ loads plus the timed pauses walked', () => {
    fc.assert(
      fc.property(scenario, load, (s, loadSeconds) => {
        const stages = stagesOf(s);
        const e = estimateRollout(inputFor(s.to, stages, { loadSeconds }));
        const launches = stages.filter((x) => x.launched).length;
        expect(e.durationSeconds).toBeGreaterThanOrEqual(launches * loadSeconds - 1e-9);
        if (!s.to.rollout.analysis) {
          const paused = new Set(stages.map((x) => x.step));
          const pauses = canarySteps(s.to)
            .map((step, k) => ('pause' in step && step.pause.duration && paused.has(k) ? parseDurationMs(step.pause.duration) / 1000 : 0))
            .reduce((x, y) => x + y, 0);
          expect(e.durationSeconds).toBeCloseTo(launches * loadSeconds + pauses, 6);
        }
      }),
    );
  });

  test('extras ≤ duration × the most replicas above the steady state at any stage', () => {
    fc.assert(
      fc.property(scenario, load, (s, loadSeconds) => {
        const stages = stagesOf(s);
        const e = estimateRollout(inputFor(s.to, stages, { loadSeconds }));
        const most = Math.max(0, ...stages.map((x) => x.canaryReplicas + x.primaryReplicas - s.to.replicas));
        expect(e.extraReplicaHours * 3600).toBeLessThanOrEqual(e.durationSeconds * most + 1e-6);
      }),
    );
  });

  test('a first deploy never runs above the steady state: no extras, one load', () => {
    fc.assert(
      fc.property(scenario, load, (s, loadSeconds) => {
        const e = estimateRollout(inputFor(s.to, stagesOf({ to: s.to, from: undefined }), { loadSeconds, gpusPerReplica: 1, usdPerReplicaHour: 1 }));
        expect(e).toMatchObject({ durationSeconds: loadSeconds, extraReplicaHours: 0, extraCostUsd: 0, lowerBound: false });
      }),
    );
  });

  test('a lower bound exactly when the rollout walks a pause until resumed', () => {
    fc.assert(
      fc.property(scenario, load, (s, loadSeconds) => {
        const stages = stagesOf(s);
        const e = estimateRollout(inputFor(s.to, stages, { loadSeconds }));
        const walked = new Set(stages.map((x) => x.step));
        const indefinite = canarySteps(s.to).filter((step, k) => walked.has(k) && 'pause' in step && !step.pause.duration).length;
        expect(e.indefinitePauses).toBe(indefinite);
        expect(e.lowerBound).toBe(indefinite > 0);
      }),
    );
  });

  test('nothing launched: no time and no extras, whatever the replicas (stages that only move traffic or remove)', () => {
    const bare = fc.array(
      fc.record({ canaryReplicas: fc.integer({ min: 0, max: 10 }), primaryReplicas: fc.integer({ min: 0, max: 10 }) }).map((r) => stage(r.canaryReplicas, r.primaryReplicas)),
      { maxLength: 8 },
    );
    fc.assert(
      fc.property(bare, fc.integer({ min: 1, max: 10 }), load, (stages, steadyReplicas, loadSeconds) => {
        const e = estimateRollout({ stages, steps: [{ weight: 100 }], steadyReplicas, loadSeconds, gpusPerReplica: 2, usdPerReplicaHour: 3 });
        expect(e).toMatchObject({ durationSeconds: 0, extraReplicaHours: 0, extraGpuHours: 0, extraCostUsd: 0 });
      }),
    );
  });
});
