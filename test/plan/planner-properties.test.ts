/**
 * Property tests of the planner: random configurations, random GPU budgets and random
 * readiness orders, simulated step by step. At every step the invariants must hold, and
 * every rollout must finish.
 */
import fc from 'fast-check';
import { planStep, resolveLimits } from '../../src/plan';
import type { ObservedReplica, PlanStep } from '../../src/plan/types';
import type { Quantity, RolloutStrategy } from '../../src/spec/types';

interface Config {
  replicas: number;
  maxSurge: Quantity;
  maxUnavailable: Quantity;
  strategy: RolloutStrategy;
  gpuPerReplica: number;
  /** Extra GPUs beyond the replicas' steady-state need (Infinity = GPUs do not limit). */
  gpuSpare: number;
  /** Leaving replicas free their surge room at once (new rollouts) or only once gone (older ones). */
  leavingFreesRoom: boolean;
}

const quantity = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('0%', '10%', '25%', '50%', '100%'));

const config: fc.Arbitrary<Config> = fc
  .record({
    replicas: fc.integer({ min: 1, max: 8 }),
    maxSurge: quantity,
    maxUnavailable: quantity,
    strategy: fc.constantFrom<RolloutStrategy>('rolling', 'blue_green', 'canary'),
    gpuPerReplica: fc.integer({ min: 0, max: 2 }),
    gpuSpare: fc.oneof(fc.constant(Infinity), fc.integer({ min: 0, max: 4 })),
    leavingFreesRoom: fc.boolean(),
  })
  .filter((c) => {
    const l = resolveLimits(c.replicas, c.maxSurge, c.maxUnavailable);
    if (l.maxSurge === 0 && l.maxUnavailable === 0) return false; // rejected by the spec
    // With no spare GPU and no unavailability allowed, waiting forever is the right answer.
    const spareReplicas = c.gpuPerReplica === 0 || c.gpuSpare === Infinity ? Infinity : Math.floor(c.gpuSpare / c.gpuPerReplica);
    if (spareReplicas === 0 && l.maxUnavailable === 0) return false;
    // Blue-green keeps N - maxUnavailable old replicas serving while all N new ones load:
    // with fewer GPUs than that, it cannot finish (the planner holds, see the examples).
    return !(c.strategy === 'blue_green' && spareReplicas < c.replicas - l.maxUnavailable);
  });

interface Sim {
  replicas: ObservedReplica[];
  gpusHeld: Map<string, number>;
  seq: number;
}

function simulate(c: Config, coins: number[], observe: (step: PlanStep, before: ObservedReplica[], sim: Sim) => void): { steps: number; done: boolean } {
  const limits = resolveLimits(c.replicas, c.maxSurge, c.maxUnavailable);
  const totalGpus = c.gpuSpare === Infinity ? Infinity : c.replicas * c.gpuPerReplica + c.gpuSpare;
  const sim: Sim = { replicas: [], gpusHeld: new Map(), seq: 0 };
  for (let i = 0; i < c.replicas; i++) {
    const id = `r${String(sim.seq++).padStart(3, '0')}`;
    sim.replicas.push({ id, version: 1, status: 'READY' });
    sim.gpusHeld.set(id, c.gpuPerReplica);
  }
  let coin = 0;
  const flip = () => coins[coin++ % coins.length] % 2 === 0;
  const maxSteps = 10 * c.replicas + 20;
  for (let steps = 0; steps < maxSteps; steps++) {
    const held = [...sim.gpusHeld.values()].reduce((a, b) => a + b, 0);
    const gpu = totalGpus === Infinity || c.gpuPerReplica === 0 ? undefined : { free: totalGpus - held, perReplica: c.gpuPerReplica };
    const before = sim.replicas.map((r) => ({ ...r }));
    const step = planStep({ ...c, targetVersion: 2, observed: before, gpu });
    observe(step, before, sim);
    if (step.done) return { steps, done: true };
    // Carry the step out: removals first (they free their GPUs), then launches.
    sim.replicas = sim.replicas.filter((r) => !step.remove.includes(r.id));
    for (const id of step.remove) sim.gpusHeld.delete(id);
    for (let i = 0; i < step.launch; i++) {
      const id = `r${String(sim.seq++).padStart(3, '0')}`;
      sim.replicas.push({ id, version: 2, status: 'PROVISIONING' });
      sim.gpusHeld.set(id, c.gpuPerReplica);
    }
    const heldAfter = [...sim.gpusHeld.values()].reduce((a, b) => a + b, 0);
    expect(heldAfter).toBeLessThanOrEqual(totalGpus);
    const bound = c.replicas + (c.strategy === 'blue_green' ? Math.max(c.replicas, limits.maxSurge) : limits.maxSurge);
    expect(sim.replicas.length).toBeLessThanOrEqual(bound);
    // The world moves: loading replicas become READY in a random order.
    const pending = sim.replicas.filter((r) => r.status !== 'READY');
    let progressed = false;
    for (const r of pending) {
      if (flip()) {
        r.status = r.status === 'PROVISIONING' ? 'STARTING' : 'READY';
        progressed = true;
      }
    }
    if (!progressed && pending.length > 0) pending[0].status = 'READY';
  }
  return { steps: maxSteps, done: false };
}

const coins = fc.array(fc.nat(), { minLength: 50, maxLength: 200 });

describe('planner invariants over random rollouts', () => {
  test('every rollout finishes with N ready v2 replicas and no v1', () => {
    fc.assert(
      fc.property(config, coins, (c, cs) => {
        let last: ObservedReplica[] = [];
        const result = simulate(c, cs, (_step, before) => (last = before));
        expect(result.done).toBe(true);
        expect(last.filter((r) => r.version === 2 && r.status === 'READY')).toHaveLength(c.replicas);
        expect(last.filter((r) => r.version === 1)).toHaveLength(0);
      }),
      { numRuns: 400 },
    );
  });

  test('traffic goes only to READY replicas that stay, never to removed ones', () => {
    fc.assert(
      fc.property(config, coins, (c, cs) => {
        simulate(c, cs, (step, before) => {
          const ready = new Set(before.filter((r) => r.status === 'READY').map((r) => r.id));
          for (const t of step.traffic) {
            expect(ready.has(t.replicaId)).toBe(true);
            expect(step.remove).not.toContain(t.replicaId);
          }
        });
      }),
      { numRuns: 300 },
    );
  });

  test('serving capacity never drops below replicas - max_unavailable', () => {
    fc.assert(
      fc.property(config, coins, (c, cs) => {
        const { maxUnavailable } = resolveLimits(c.replicas, c.maxSurge, c.maxUnavailable);
        simulate(c, cs, (step) => {
          expect(step.traffic.length).toBeGreaterThanOrEqual(c.replicas - maxUnavailable);
        });
      }),
      { numRuns: 300 },
    );
  });

  test('with max_unavailable 0, a READY old replica leaves only when a READY new one replaced it', () => {
    fc.assert(
      fc.property(
        config.filter((c) => resolveLimits(c.replicas, c.maxSurge, c.maxUnavailable).maxUnavailable === 0),
        coins,
        (c, cs) => {
          simulate(c, cs, (step, before) => {
            const readyAfter = before.filter((r) => r.status === 'READY' && !step.remove.includes(r.id));
            expect(readyAfter.length).toBeGreaterThanOrEqual(c.replicas);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  test('blue-green never splits traffic across versions', () => {
    fc.assert(
      fc.property(
        config.filter((c) => c.strategy === 'blue_green'),
        coins,
        (c, cs) => {
          simulate(c, cs, (step) => {
            expect(new Set(step.traffic.map((t) => t.version)).size).toBeLessThanOrEqual(1);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  test('FAILED replicas are always removed', () => {
    fc.assert(
      fc.property(
        config,
        fc.array(fc.constantFrom<ObservedReplica['status']>('READY', 'STARTING', 'FAILED', 'PROVISIONING'), { maxLength: 10 }),
        (c, statuses) => {
          const observed = statuses.map((status, i) => ({ id: `x${i}`, version: 1 + (i % 2), status }));
          const step = planStep({ ...c, targetVersion: 2, observed });
          for (const r of observed) if (r.status === 'FAILED') expect(step.remove).toContain(r.id);
        },
      ),
      { numRuns: 300 },
    );
  });
});
