/**
 * Property tests of the traffic-led planner (planCanaryStep): random fleet sizes, surges,
 * target weights that change up and down (also before the previous one is reached), a
 * rollback at a random moment, random readiness orders and failed launches. The planner is
 * driven like the workflow drives it: removals are carried out (the replica shuts down for a
 * while, then is gone), launches appear as PROVISIONING, become STARTING, then READY (or
 * FAILED) in random batches. The invariants are checked after every step.
 */
import fc from 'fast-check';
import { planCanaryStep, surgePercentOf } from '../../src/plan';
import type { CanaryPlanStep, ObservedReplica, ReplicaStatus } from '../../src/plan/types';
import type { ServiceSpec } from '../../src/spec/types';

const EPS = 1e-6;
const LIVE: ReadonlySet<ReplicaStatus> = new Set(['PROVISIONING', 'STARTING', 'READY', 'NOT_READY']);
const PRIMARY = 1;
const CANARY = 2;

type Surge = { percent: number } | { count: number };

interface Scenario {
  np: number;
  nc: number;
  surge: Surge;
  /** Weights to move to in order; `hold` 0: until reached, else at most `hold` steps (a manual change). */
  targets: { weight: number; hold: number }[];
  /** Step at which a rollback starts (it then runs to the end); absent: the rollout goes to 100%. */
  rollbackAt?: number;
  /** Launches may fail before this step only. */
  failUntil: number;
  coins: number[];
}

/** The canary's spec as `rollout plan` and the workflow read it (surgePercentOf does the rounding). */
function canarySpec(nc: number, surge: Surge): ServiceSpec {
  return {
    name: 'llm',
    replicas: nc,
    run: 'serve',
    env: {},
    resources: { provider: 'local' },
    readiness_probe: { path: '/health', initial_delay_seconds: 60, period_seconds: 5, timeout_seconds: 5, failure_threshold: 3 },
    rollout: {
      strategy: 'canary',
      max_surge: 'count' in surge ? surge.count : 1,
      max_unavailable: 0,
      timeout: '120m',
      ...('percent' in surge ? { max_surge_percent: surge.percent } : {}),
    },
  };
}

const weight = fc.oneof(fc.constantFrom(0, 1, 10, 20, 25, 33, 50, 75, 90, 99, 100), fc.integer({ min: 0, max: 100 }));

const scenario: fc.Arbitrary<Scenario> = fc
  .record({
    np: fc.integer({ min: 1, max: 12 }),
    nc: fc.integer({ min: 1, max: 12 }),
    surge: fc.oneof(fc.record({ percent: fc.integer({ min: 1, max: 100 }) }), fc.record({ count: fc.integer({ min: 1, max: 3 }) })),
    targets: fc.array(fc.record({ weight, hold: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 8 })) }), { minLength: 1, maxLength: 5 }),
    rollbackAt: fc.option(fc.integer({ min: 0, max: 80 }), { nil: undefined }),
    failUntil: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 40 })),
    coins: fc.array(fc.nat({ max: 99 }), { minLength: 20, maxLength: 200 }),
  })
  // The spec refuses a max_surge_percent below one canary replica.
  .filter((s) => !('percent' in s.surge) || Math.floor((s.nc * s.surge.percent) / 100) >= 1);

interface StepView {
  /** What the planner saw. */
  before: ObservedReplica[];
  step: CanaryPlanStep;
  /** The fleet right after the step was carried out (removed ones SHUTTING_DOWN, launches PROVISIONING). */
  after: ObservedReplica[];
  weight: number;
  rollingBack: boolean;
  /** The current weight (0 < w < 100) was reached earlier and has not changed since. */
  holding: boolean;
  surgePercent: number;
}

interface Outcome {
  done: boolean;
  steps: number;
  /** From this step on, nothing fails and the final target (100%, or the rollback) is set. */
  settledFrom: number;
}

/** Steps a run may take to finish once nothing fails any more and the last target is set. */
const finishBound = (s: Scenario): number => 6 * (s.np + s.nc) + 30;

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * The room the planner may use: the spec's surge, but at least what moving between two fleet
 * sizes needs (one replica of each version less their finest common step, 100%/lcm).
 */
function roomOf(s: Scenario, surgePercent: number): number {
  const lcm = (s.nc * s.np) / gcd(s.nc, s.np);
  return Math.max(surgePercent, 100 / s.nc + 100 / s.np - 100 / lcm);
}

function run(s: Scenario, observe: (v: StepView) => void): Outcome {
  const surgePercent = surgePercentOf(canarySpec(s.nc, s.surge));
  const room = roomOf(s, surgePercent);
  const unit = (r: ObservedReplica): number => (r.version === CANARY ? 100 / s.nc : 100 / s.np);
  let seq = 0;
  const newId = (): string => `r${String(seq++).padStart(4, '0')}`;
  let fleet: (ObservedReplica & { age: number })[] = Array.from({ length: s.np }, () => ({ id: newId(), version: PRIMARY, status: 'READY' as const, age: 0 }));
  let coin = 0;
  const roll = (): number => s.coins[coin++ % s.coins.length];

  let target = 0;
  let w = s.targets[0].weight;
  let sinceChange = 0;
  let reachedCurrent = false;
  let rollingBack = false;
  let finalFrom = s.targets.length === 0 ? 0 : Infinity;

  const hardCap = (s.rollbackAt ?? 0) + s.failUntil + (s.targets.length + 2) * finishBound(s);
  for (let i = 0; i < hardCap; i++) {
    if (!rollingBack && s.rollbackAt !== undefined && i >= s.rollbackAt) {
      rollingBack = true;
      finalFrom = Math.min(finalFrom, i);
    }
    const before = fleet.map(({ id, version, status }) => ({ id, version, status }));
    const step = planCanaryStep({
      canary: { version: CANARY, replicas: s.nc },
      primary: { version: PRIMARY, replicas: s.np },
      weight: w,
      rollingBack,
      surgePercent,
      observed: before,
    });
    // Carry the step out: removed replicas shut down, launches start provisioning.
    const removed = new Set(step.remove);
    for (const r of fleet) if (removed.has(r.id)) Object.assign(r, { status: 'SHUTTING_DOWN', age: 0 });
    for (let k = 0; k < step.launch; k++) fleet.push({ id: newId(), version: CANARY, status: 'PROVISIONING', age: 0 });
    for (let k = 0; k < step.launchPrimary; k++) fleet.push({ id: newId(), version: PRIMARY, status: 'PROVISIONING', age: 0 });
    const after = fleet.map(({ id, version, status }) => ({ id, version, status }));
    const holding = reachedCurrent && !rollingBack && w > 0 && w < 100;
    observe({ before, step, after, weight: w, rollingBack, holding, surgePercent });
    expect(after.filter((r) => r.status !== 'TERMINATED').reduce((sum, r) => sum + unit(r), 0)).toBeLessThanOrEqual(100 + room + EPS);
    if (step.done) return { done: true, steps: i, settledFrom: Math.max(finalFrom, s.failUntil) };

    // Targets: the next one once this one is reached, or earlier (a manual change).
    if (step.reached) reachedCurrent = true;
    sinceChange++;
    const hold = s.targets[target]?.hold ?? 0;
    if (!rollingBack && target < s.targets.length && (step.reached || (hold > 0 && sinceChange >= hold))) {
      target++;
      w = target < s.targets.length ? s.targets[target].weight : 100;
      if (target === s.targets.length) finalFrom = Math.min(finalFrom, i + 1);
      sinceChange = 0;
      reachedCurrent = false;
    }

    // The world moves: replicas load and shut down in random batches, some launches fail.
    const failing = i < s.failUntil;
    for (const r of fleet) {
      r.age++;
      const c = roll();
      if (r.status === 'SHUTTING_DOWN' && (c < 50 || r.age >= 3)) r.status = 'TERMINATED';
      else if ((r.status === 'PROVISIONING' || r.status === 'STARTING') && failing && c < 15) r.status = 'FAILED';
      else if (r.status === 'PROVISIONING' && (c < 60 || r.age >= 2)) Object.assign(r, { status: 'STARTING', age: 0 });
      else if (r.status === 'STARTING' && (c < 50 || r.age >= 3)) r.status = 'READY';
    }
    fleet = fleet.filter((r) => r.status !== 'TERMINATED');
  }
  return { done: false, steps: hardCap, settledFrom: Math.max(finalFrom, s.failUntil) };
}

/** Capacity in percent of the version's steady state, at most 100. */
const capacity = (replicas: ObservedReplica[], version: number, n: number): number =>
  Math.min(100, (replicas.filter((r) => r.version === version).length * 100) / n);

const share = (step: CanaryPlanStep, version: number): number =>
  step.traffic.filter((t) => t.version === version).reduce((sum, t) => sum + t.weight, 0);

/** READY replicas that keep serving after the step. */
const serving = (v: StepView): ObservedReplica[] => {
  const removed = new Set(v.step.remove);
  return v.before.filter((r) => r.status === 'READY' && !removed.has(r.id));
};

const params = { numRuns: 400 };

describe('traffic-led planner invariants over random rollouts', () => {
  test('total capacity (live, shutting down and failed) never exceeds 100% + surge', () => {
    // Checked inside run() after every step; here the runs only have to happen.
    fc.assert(
      fc.property(scenario, (s) => {
        const surgePercent = surgePercentOf(canarySpec(s.nc, s.surge));
        // Same fleet sizes: exactly the spec's surge (the spec asks for at least one replica).
        if (s.np === s.nc) expect(roomOf(s, surgePercent)).toBe(surgePercent);
        run(s, () => undefined);
      }),
      params,
    );
  });

  test('traffic goes only to READY replicas that stay, and adds up to 100%', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        run(s, (v) => {
          const ready = new Set(serving(v).map((r) => r.id));
          expect(v.step.traffic.filter((t) => !ready.has(t.replicaId))).toEqual([]);
          if (v.step.traffic.length > 0) expect(Math.abs(share(v.step, PRIMARY) + share(v.step, CANARY) - 100)).toBeLessThan(EPS);
          expect(Math.abs(share(v.step, CANARY) - v.step.canaryPercent)).toBeLessThan(EPS);
        });
      }),
      params,
    );
  });

  test("each version's traffic stays within its READY capacity, and READY capacity never drops below 100%", () => {
    fc.assert(
      fc.property(scenario, (s) => {
        run(s, (v) => {
          const readyBefore = v.before.filter((r) => r.status === 'READY');
          const kept = serving(v);
          const capC = capacity(kept, CANARY, s.nc);
          const capP = capacity(kept, PRIMARY, s.np);
          if (capacity(readyBefore, CANARY, s.nc) + capacity(readyBefore, PRIMARY, s.np) >= 100 - EPS) {
            expect(capC + capP).toBeGreaterThanOrEqual(100 - EPS);
          }
          if (capC + capP >= 100 - EPS) {
            expect(share(v.step, CANARY)).toBeLessThanOrEqual(capC + EPS);
            expect(share(v.step, PRIMARY)).toBeLessThanOrEqual(capP + EPS);
          }
        });
      }),
      params,
    );
  });

  test('once a weight between 0 and 100 is reached, each version keeps a live replica', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        run(s, (v) => {
          if (!v.holding) return;
          const live = v.after.filter((r) => LIVE.has(r.status));
          expect(live.some((r) => r.version === CANARY)).toBe(true);
          expect(live.some((r) => r.version === PRIMARY)).toBe(true);
        });
      }),
      params,
    );
  });

  test('rolling back never gives the primary more traffic than its READY capacity', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        let previousPrimaryShare = 0;
        run(s, (v) => {
          const primaryShare = share(v.step, PRIMARY);
          if (v.rollingBack && primaryShare > previousPrimaryShare + EPS) {
            expect(primaryShare).toBeLessThanOrEqual(capacity(serving(v), PRIMARY, s.np) + EPS);
          }
          previousPrimaryShare = primaryShare;
        });
      }),
      params,
    );
  });

  test('every run finishes within a bounded number of steps once nothing fails any more', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        let last: StepView | undefined;
        const outcome = run(s, (v) => (last = v));
        expect(outcome.done).toBe(true);
        expect(outcome.steps - outcome.settledFrom).toBeLessThanOrEqual(finishBound(s));
        const end = (last?.after ?? []).filter((r) => LIVE.has(r.status));
        const wanted = last?.rollingBack ? { version: PRIMARY, n: s.np } : { version: CANARY, n: s.nc };
        expect(end.map((r) => `${r.version}${r.status}`)).toEqual(Array(wanted.n).fill(`${wanted.version}READY`));
        expect(last && share(last.step, wanted.version)).toBeCloseTo(100, 6);
      }),
      params,
    );
  });
});
