/**
 * Worked examples of the traffic-led planner (planCanaryStep), of the spec's rollout section
 * (canarySteps, surgePercentOf, describeStep), of `rollout plan`'s stages (simulateRollout) and
 * of the deploy decision (decideDeploy). Table-driven, Argo Rollouts style: each row is one
 * observed fleet and the step the planner must choose.
 */
import { canarySteps, describeStep, isTrafficLed, planCanaryStep, simulateRollout, surgePercentOf, type PlanStage } from '../../src/plan';
import type { CanaryPlanInput, ObservedReplica } from '../../src/plan/types';
import { decideDeploy } from '../../src/spec/diff';
import { parseSpec } from '../../src/spec/load';
import type { ServiceSpec } from '../../src/spec/types';

/** "1R" = READY v1 (the primary), "2S" = STARTING v2 (the canary), P PROVISIONING, F FAILED, N NOT_READY, D SHUTTING_DOWN. Ids are v<version>-<index>. */
function fleet(...codes: string[]): ObservedReplica[] {
  const status = { R: 'READY', S: 'STARTING', P: 'PROVISIONING', F: 'FAILED', N: 'NOT_READY', D: 'SHUTTING_DOWN' } as const;
  return codes.map((code, i) => {
    const version = Number(code.slice(0, -1));
    return { id: `v${version}-${i}`, version, status: status[code.slice(-1) as keyof typeof status] };
  });
}

function spec(yaml: string): ServiceSpec {
  const r = parseSpec(`name: llm\nrun: serve --port $PORT\n${yaml}`);
  if (!r.ok) throw new Error(`bad test spec: ${JSON.stringify(r.issues)}`);
  return r.spec;
}

/** Np = Nc = 4, surge 25% (one replica), v1 → v2. */
const base: Omit<CanaryPlanInput, 'observed'> = {
  canary: { version: 2, replicas: 4 },
  primary: { version: 1, replicas: 4 },
  weight: 10,
  rollingBack: false,
  surgePercent: 25,
};

type Input = Partial<Omit<CanaryPlanInput, 'canary' | 'primary'>> & { nc?: number; np?: number };

interface Case {
  name: string;
  input: Input;
  observed: ObservedReplica[];
  launch?: number;
  launchPrimary?: number;
  remove?: string[];
  /** The canary's traffic after the step. */
  canary: number;
  /** Percent per replica id after the step (READY replicas only). */
  traffic: Record<string, number>;
  reached?: boolean;
  done?: boolean;
  note?: RegExp;
}

const even = (ids: string[], total: number): Record<string, number> => Object.fromEntries(ids.map((id) => [id, total / ids.length]));
const split = (primary: string[], canary: string[], canaryPercent: number): Record<string, number> => ({
  ...even(primary, 100 - canaryPercent),
  ...(canaryPercent > 0 ? even(canary, canaryPercent) : {}),
});
const P4 = ['v1-0', 'v1-1', 'v1-2', 'v1-3'];

describe('planCanaryStep worked examples', () => {
  const cases: Case[] = [
    // The doc comment's examples, row by row.
    { name: 'w 10: PPPP → launch 1 canary (125%)', input: {}, observed: fleet('1R', '1R', '1R', '1R'), launch: 1, canary: 0, traffic: even(P4, 100), note: /launching 1 v2/ },
    { name: 'w 10: PPPP c → wait, the primary keeps all traffic', input: {}, observed: fleet('1R', '1R', '1R', '1R', '2S'), canary: 0, traffic: even(P4, 100), note: /waiting for 1 replica/ },
    { name: 'w 10: PPPP C → traffic C 10%, reached', input: {}, observed: fleet('1R', '1R', '1R', '1R', '2R'), canary: 10, traffic: split(P4, ['v2-4'], 10), reached: true, note: /holding at v2 10%/ },
    { name: 'w 50: PPPP C → traffic C 25% (its READY capacity); remove 1 P', input: { weight: 50 }, observed: fleet('1R', '1R', '1R', '1R', '2R'), remove: ['v1-0'], canary: 25, traffic: split(['v1-1', 'v1-2', 'v1-3'], ['v2-4'], 25) },
    { name: 'w 50: PPP C → launch 1 canary', input: { weight: 50 }, observed: fleet('1R', '1R', '1R', '2R'), launch: 1, canary: 25, traffic: split(['v1-0', 'v1-1', 'v1-2'], ['v2-3'], 25) },
    { name: 'w 50: PPP CC → traffic C 50%; remove 1 P', input: { weight: 50 }, observed: fleet('1R', '1R', '1R', '2R', '2R'), remove: ['v1-0'], canary: 50, traffic: split(['v1-1', 'v1-2'], ['v2-3', 'v2-4'], 50) },
    { name: 'w 50: PP CC → reached', input: { weight: 50 }, observed: fleet('1R', '1R', '2R', '2R'), canary: 50, traffic: split(['v1-0', 'v1-1'], ['v2-2', 'v2-3'], 50), reached: true },
    { name: 'rollback from PP CC: launch 1 primary first (room 25%), traffic stays', input: { rollingBack: true }, observed: fleet('1R', '1R', '2R', '2R'), launchPrimary: 1, canary: 50, traffic: split(['v1-0', 'v1-1'], ['v2-2', 'v2-3'], 50), note: /rolling back.*launching 1 v1/ },
    { name: 'rollback: PPP CC → traffic C 25%; remove 1 C', input: { rollingBack: true }, observed: fleet('1R', '1R', '1R', '2R', '2R'), remove: ['v2-3'], canary: 25, traffic: split(['v1-0', 'v1-1', 'v1-2'], ['v2-4'], 25) },
    { name: 'rollback: PPP C → launch 1 primary', input: { rollingBack: true }, observed: fleet('1R', '1R', '1R', '2R'), launchPrimary: 1, canary: 25, traffic: split(['v1-0', 'v1-1', 'v1-2'], ['v2-3'], 25) },
    { name: 'rollback: PPPP C → traffic C 0%; remove the last C', input: { rollingBack: true }, observed: fleet('1R', '1R', '1R', '1R', '2R'), remove: ['v2-4'], canary: 0, traffic: even(P4, 100) },
    { name: 'rollback: PPPP → done', input: { rollingBack: true }, observed: fleet('1R', '1R', '1R', '1R'), canary: 0, traffic: even(P4, 100), reached: true, done: true, note: /rolled back: v1 carries all traffic/ },

    // Rollback from the middle of a step.
    { name: 'rollback with a canary still loading: the loading one goes first, READY ones keep their traffic', input: { rollingBack: true }, observed: fleet('1R', '1R', '2R', '2R', '2S'), remove: ['v2-4'], canary: 50, traffic: split(['v1-0', 'v1-1'], ['v2-2', 'v2-3'], 50) },
    { name: 'rollback with a primary relaunch still loading: wait, no traffic moves onto it', input: { rollingBack: true }, observed: fleet('1R', '1R', '1S', '2R', '2R'), canary: 50, traffic: split(['v1-0', 'v1-1'], ['v2-3', 'v2-4'], 50) },
    { name: 'rollback before any canary is READY: the loading canary is removed, nothing else changes', input: { rollingBack: true }, observed: fleet('1R', '1R', '1R', '1R', '2S'), remove: ['v2-4'], canary: 0, traffic: even(P4, 100) },
    { name: 'rollback with no free GPU: the canary keeps its traffic rather than overload the primary', input: { rollingBack: true, gpu: { free: 0, perCanaryReplica: 1, perPrimaryReplica: 1 } }, observed: fleet('1R', '1R', '2R', '2R'), canary: 50, traffic: split(['v1-0', 'v1-1'], ['v2-2', 'v2-3'], 50), note: /more wait for free GPUs/ },

    // Lowering the weight (manual percent 50 → 10): primaries come back before traffic does.
    { name: 'w 50 → 10: PP CC → launch 1 primary, traffic stays at 50%', input: { weight: 10 }, observed: fleet('1R', '1R', '2R', '2R'), launchPrimary: 1, canary: 50, traffic: split(['v1-0', 'v1-1'], ['v2-2', 'v2-3'], 50) },
    { name: 'w 50 → 10: PP p CC → wait for the primary', input: { weight: 10 }, observed: fleet('1R', '1R', '1S', '2R', '2R'), canary: 50, traffic: split(['v1-0', 'v1-1'], ['v2-3', 'v2-4'], 50) },
    { name: 'w 50 → 10: PPP CC → traffic C 25%; remove 1 C', input: { weight: 10 }, observed: fleet('1R', '1R', '1R', '2R', '2R'), remove: ['v2-3'], canary: 25, traffic: split(['v1-0', 'v1-1', 'v1-2'], ['v2-4'], 25) },
    { name: 'w 50 → 10: PPP C → launch 1 primary', input: { weight: 10 }, observed: fleet('1R', '1R', '1R', '2R'), launchPrimary: 1, canary: 25, traffic: split(['v1-0', 'v1-1', 'v1-2'], ['v2-3'], 25) },
    { name: 'w 50 → 10: PPPP C → traffic C 10%, reached', input: { weight: 10 }, observed: fleet('1R', '1R', '1R', '1R', '2R'), canary: 10, traffic: split(P4, ['v2-4'], 10), reached: true },
    { name: 'manual 0% (not a rollback): one canary replica stays, without traffic', input: { weight: 0 }, observed: fleet('1R', '1R', '1R', '1R', '2R'), canary: 0, traffic: even(P4, 100), reached: true, done: false, note: /holding at v2 0%/ },

    // Weight 100.
    { name: 'w 100: P CCCC → all traffic to the canary; remove the last P', input: { weight: 100 }, observed: fleet('1R', '2R', '2R', '2R', '2R'), remove: ['v1-0'], canary: 100, traffic: even(['v2-1', 'v2-2', 'v2-3', 'v2-4'], 100) },
    { name: 'w 100: CCCC → done', input: { weight: 100 }, observed: fleet('2R', '2R', '2R', '2R'), canary: 100, traffic: even(['v2-0', 'v2-1', 'v2-2', 'v2-3'], 100), reached: true, done: true, note: /done: 4 v2 replica\(s\) carry all traffic/ },

    // FAILED and shutting-down replicas.
    { name: 'FAILED canary removed; it holds its room until gone, so no relaunch yet', input: {}, observed: fleet('1R', '1R', '1R', '1R', '2F'), remove: ['v2-4'], canary: 0, traffic: even(P4, 100), note: /removing 1 failed replica.*more wait for surge room/ },
    { name: 'a canary SHUTTING_DOWN still takes room: wait', input: {}, observed: fleet('1R', '1R', '1R', '1R', '2D'), canary: 0, traffic: even(P4, 100) },
    { name: 'FAILED primary relaunch during a rollback is removed too', input: { rollingBack: true }, observed: fleet('1R', '1R', '1F', '2R', '2R'), remove: ['v1-2'], canary: 50, traffic: split(['v1-0', 'v1-1'], ['v2-3', 'v2-4'], 50) },
    { name: 'a NOT_READY primary carries nothing: the canary takes 25% although w is 10', input: {}, observed: fleet('1R', '1R', '1R', '1N', '2R'), canary: 25, traffic: split(['v1-0', 'v1-1', 'v1-2'], ['v2-4'], 25) },
    { name: 'READY capacity below 100% (a primary lost): traffic follows capacity', input: { weight: 50 }, observed: fleet('1R', '1R', '2R'), launch: 1, canary: 100 / 3, traffic: even(['v1-0', 'v1-1', 'v2-2'], 100) },

    // GPU-limited launches.
    { name: 'GPUs: none free → nothing launches, the note says why', input: { gpu: { free: 0, perCanaryReplica: 1, perPrimaryReplica: 1 } }, observed: fleet('1R', '1R', '1R', '1R'), canary: 0, traffic: even(P4, 100), note: /more wait for free GPUs/ },
    { name: 'GPUs: 1 free, surge 50%, w 50 → launch 1 of the 2', input: { weight: 50, surgePercent: 50, gpu: { free: 1, perCanaryReplica: 1, perPrimaryReplica: 1 } }, observed: fleet('1R', '1R', '1R', '1R'), launch: 1, canary: 0, traffic: even(P4, 100), note: /more wait for free GPUs/ },
    { name: 'GPUs: 2 free, surge 50%, w 50 → launch 2', input: { weight: 50, surgePercent: 50, gpu: { free: 2, perCanaryReplica: 1, perPrimaryReplica: 1 } }, observed: fleet('1R', '1R', '1R', '1R'), launch: 2, canary: 0, traffic: even(P4, 100) },
    { name: 'GPUs: 3 free, 2 per canary replica, surge 100% → launch 1', input: { weight: 100, surgePercent: 100, gpu: { free: 3, perCanaryReplica: 2, perPrimaryReplica: 1 } }, observed: fleet('1R', '1R', '1R', '1R'), launch: 1, canary: 0, traffic: even(P4, 100) },

    // Np ≠ Nc: capacity in percent of each version's own steady state.
    { name: 'Np 4, Nc 2, surge 50%, w 50: PPPP → launch 1 canary (50%)', input: { np: 4, nc: 2, weight: 50, surgePercent: 50 }, observed: fleet('1R', '1R', '1R', '1R'), launch: 1, canary: 0, traffic: even(P4, 100) },
    { name: 'Np 4, Nc 2, w 50: PPPP C → traffic C 50%; remove 2 P', input: { np: 4, nc: 2, weight: 50, surgePercent: 50 }, observed: fleet('1R', '1R', '1R', '1R', '2R'), remove: ['v1-0', 'v1-1'], canary: 50, traffic: split(['v1-2', 'v1-3'], ['v2-4'], 50) },
    { name: 'Np 4, Nc 2, w 50: PP C → reached', input: { np: 4, nc: 2, weight: 50, surgePercent: 50 }, observed: fleet('1R', '1R', '2R'), canary: 50, traffic: split(['v1-0', 'v1-1'], ['v2-2'], 50), reached: true },
    { name: 'Np 2, Nc 4, surge 25%: the room is one primary (50%), so PP → launch 2 canaries', input: { np: 2, nc: 4, weight: 50 }, observed: fleet('1R', '1R'), launch: 2, canary: 0, traffic: even(['v1-0', 'v1-1'], 100) },
    { name: 'Np 2, Nc 4, w 50: PP CC → traffic C 50%; remove 1 P', input: { np: 2, nc: 4, weight: 50 }, observed: fleet('1R', '1R', '2R', '2R'), remove: ['v1-0'], canary: 50, traffic: { 'v1-1': 50, 'v2-2': 25, 'v2-3': 25 } },
    { name: 'Np 3, Nc 4, surge 25%, w 30: PPP C → launch a 2nd canary (the room is 50%)', input: { np: 3, nc: 4, weight: 30 }, observed: fleet('1R', '1R', '1R', '2R'), launch: 1, canary: 25, traffic: split(['v1-0', 'v1-1', 'v1-2'], ['v2-3'], 25) },
    { name: 'Np 3, Nc 4, w 30: PPP CC (150%) → reached', input: { np: 3, nc: 4, weight: 30 }, observed: fleet('1R', '1R', '1R', '2R', '2R'), canary: 30, traffic: split(['v1-0', 'v1-1', 'v1-2'], ['v2-3', 'v2-4'], 30), reached: true },
  ];

  test.each(cases)('$name', ({ input, observed, launch, launchPrimary, remove, canary, traffic, reached, done, note }) => {
    const { np, nc, ...rest } = input;
    const step = planCanaryStep({
      ...base,
      ...rest,
      canary: { version: 2, replicas: nc ?? base.canary.replicas },
      primary: { version: 1, replicas: np ?? base.primary.replicas },
      observed,
    });
    expect({ launch: step.launch, launchPrimary: step.launchPrimary, remove: step.remove }).toEqual({ launch: launch ?? 0, launchPrimary: launchPrimary ?? 0, remove: remove ?? [] });
    expect(step.canaryPercent).toBeCloseTo(canary, 9);
    const got = Object.fromEntries(step.traffic.map((t) => [t.replicaId, t.weight]));
    expect(Object.keys(got).sort()).toEqual(Object.keys(traffic).sort());
    for (const [id, weight] of Object.entries(traffic)) expect(got[id]).toBeCloseTo(weight, 9);
    expect({ reached: step.reached, done: step.done }).toEqual({ reached: reached ?? false, done: done ?? false });
    expect(step.note).toMatch(note ?? /./);
  });

  test('the input order of the observed replicas does not matter', () => {
    const observed = fleet('1R', '1R', '1R', '2R', '2R');
    const a = planCanaryStep({ ...base, weight: 50, observed });
    const b = planCanaryStep({ ...base, weight: 50, observed: [...observed].reverse() });
    expect(b).toEqual(a);
  });

  test('a weight outside 0–100 is clamped', () => {
    expect(planCanaryStep({ ...base, weight: 150, observed: fleet('2R', '2R', '2R', '2R') }).done).toBe(true);
    expect(planCanaryStep({ ...base, weight: -5, observed: fleet('1R', '1R', '1R', '1R', '2R') }).canaryPercent).toBe(0);
  });
});

describe('the rollout section: canarySteps, isTrafficLed, surgePercentOf, describeStep', () => {
  test.each([
    ['canary, steps [10, pause {}, 50] → the same, then 100', 'replicas: 4\nrollout: {strategy: canary, steps: [{weight: 10}, {pause: {}}, {weight: 50}]}\n', [{ weight: 10 }, { pause: {} }, { weight: 50 }, { weight: 100 }]],
    ['canary, steps ending at 100 → unchanged', 'rollout: {strategy: canary, steps: [{weight: 20}, {weight: 100}]}\n', [{ weight: 20 }, { weight: 100 }]],
    ['canary, a pause after 100 → still ends with the pause (100 is already reached)', 'rollout: {strategy: canary, steps: [{weight: 100}, {pause: 5m}]}\n', [{ weight: 100 }, { pause: { duration: '5m' } }]],
    ['canary, no steps → [100]', 'rollout: {strategy: canary}\n', [{ weight: 100 }]],
    ['rolling with max_surge_percent → [100]', 'replicas: 4\nrollout: {max_surge_percent: 25}\n', [{ weight: 100 }]],
    ['rolling → [100]', '', [{ weight: 100 }]],
  ])('canarySteps: %s', (_name, yaml, steps) => {
    expect(canarySteps(spec(yaml))).toEqual(steps);
  });

  test.each([
    ['canary', true, 'rollout: {strategy: canary}\n'],
    ['rolling with max_surge_percent', true, 'replicas: 4\nrollout: {max_surge_percent: 25}\n'],
    ['rolling', false, ''],
    ['blue_green', false, 'rollout: {strategy: blue_green}\n'],
  ])('isTrafficLed: %s → %p', (_name, expected, yaml) => {
    expect(isTrafficLed(spec(yaml))).toBe(expected);
  });

  test.each([
    ['4 replicas, max_surge 1 → 25%', 'replicas: 4\n', 25],
    ['4 replicas, max_surge "50%" → 50%', 'replicas: 4\nrollout: {max_surge: "50%"}\n', 50],
    ['4 replicas, max_surge_percent 30 → 25% (whole replicas only)', 'replicas: 4\nrollout: {max_surge_percent: 30}\n', 25],
    ['10 replicas, max_surge_percent 20 → 20%', 'replicas: 10\nrollout: {max_surge_percent: 20}\n', 20],
    ['3 replicas, max_surge_percent 50 → one replica, 33.3%', 'replicas: 3\nrollout: {max_surge_percent: 50}\n', 100 / 3],
    ['max_surge_percent wins over max_surge', 'replicas: 4\nrollout: {max_surge: 2, max_surge_percent: 25}\n', 25],
  ])('surgePercentOf: %s', (_name, yaml, expected) => {
    expect(surgePercentOf(spec(yaml))).toBeCloseTo(expected, 9);
  });

  test.each([
    [{ weight: 50 }, 'weight 50%'],
    [{ pause: { duration: '10m' } }, 'pause 10m'],
    [{ pause: {} }, 'pause until resumed'],
  ])('describeStep %j → %p', (step, text) => {
    expect(describeStep(step)).toBe(text);
  });
});

/** A stage as one compact row: "canary replicas/percent · primary replicas/percent". */
const row = (s: PlanStage): string => `C${s.canaryReplicas} ${s.canaryPercent}% · P${s.primaryReplicas} ${s.primaryPercent}%`;

describe('simulateRollout (the stages of `rollout plan`)', () => {
  test('1000 replicas moved one at a time through 99 alternating canary steps: the plan stops early and says so, in bounded time', () => {
    const steps = Array.from({ length: 98 }, (_, i) => `{weight: ${i % 2 === 0 ? 99 : 1}}`).join(', ');
    const toSpec = spec(`replicas: 1000\nenv: {MODEL: b}\nrollout: {strategy: canary, max_surge: 1, max_unavailable: 0, steps: [${steps}, {weight: 100}]}\n`);
    const started = Date.now();
    const stages = simulateRollout({ fromSpec: spec('replicas: 1000\n'), fromVersion: 1, toVersion: 2, toSpec });
    const last = stages[stages.length - 1];
    expect(last.truncated).toBe(true);
    expect(last.note).toMatch(/^… the plan stops here, after \d+ planner steps for 1000 replica\(s\)/);
    expect(stages.slice(0, -1).every((s) => s.truncated === undefined)).toBe(true);
    // It went as far as the budget allows (the first step is well on its way), not just one stage.
    expect(stages.length).toBeGreaterThan(100);
    // Not a timing assertion on the machine: only that the work is bounded (a loop would hit the jest timeout).
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  test('an ordinary plan is not truncated', () => {
    const stages = simulateRollout({ fromSpec: spec('replicas: 1000\n'), fromVersion: 1, toVersion: 2, toSpec: spec('replicas: 1000\nenv: {MODEL: b}\nrollout: {max_surge: 1, max_unavailable: 0}\n') });
    expect(stages.some((s) => s.truncated)).toBe(false);
    expect(stages[stages.length - 1].note).toBe('done: 1000 v2 replica(s) ready');
  });

  test('4 replicas, steps [10, pause 10m, 50, pause {}, 100]', () => {
    const stages = simulateRollout({
      fromSpec: spec('replicas: 4\n'),
      fromVersion: 1,
      toVersion: 2,
      toSpec: spec('replicas: 4\nrollout: {strategy: canary, steps: [{weight: 10}, {pause: 10m}, {weight: 50}, {pause: {}}, {weight: 100}]}\n'),
    });
    expect(stages.map((s) => `${row(s)} | ${s.note}`)).toEqual([
      'C1 0% · P4 100% | moving to v2 10%: canary traffic 0%; launching 1 v2 replica(s)',
      'C1 10% · P4 90% | weight 10% reached',
      'C1 10% · P4 90% | pause 10m',
      'C1 25% · P3 75% | moving to v2 50%: canary traffic 25%; removing 1 v1 replica(s); more wait for surge room',
      'C2 25% · P3 75% | moving to v2 50%: canary traffic 25%; launching 1 v2 replica(s)',
      'C2 50% · P2 50% | weight 50% reached',
      'C2 50% · P2 50% | pause until resumed',
      'C3 50% · P2 50% | moving to v2 100%: canary traffic 50%; launching 1 v2 replica(s); more wait for surge room',
      'C3 75% · P1 25% | moving to v2 100%: canary traffic 75%; removing 1 v1 replica(s); more wait for surge room',
      'C4 75% · P1 25% | moving to v2 100%: canary traffic 75%; launching 1 v2 replica(s)',
      'C4 100% · P0 0% | done: 4 v2 replica(s) carry all traffic',
    ]);
  });

  test('10 replicas, max_surge_percent 20: the canary goes 2, 4, 6, 8, 10 and the primary 10, 8, 6, 4, 2, 0, never above 12', () => {
    const stages = simulateRollout({ fromSpec: spec('replicas: 10\n'), fromVersion: 1, toVersion: 2, toSpec: spec('replicas: 10\nenv: {MODEL: b}\nrollout: {max_surge_percent: 20}\n') });
    expect(stages.map(row)).toEqual([
      'C2 0% · P10 100%',
      'C2 20% · P8 80%',
      'C4 20% · P8 80%',
      'C4 40% · P6 60%',
      'C6 40% · P6 60%',
      'C6 60% · P4 40%',
      'C8 60% · P4 40%',
      'C8 80% · P2 20%',
      'C10 80% · P2 20%',
      'C10 100% · P0 0%',
    ]);
    for (const s of stages) expect(s.canaryReplicas + s.primaryReplicas).toBeLessThanOrEqual(12);
    expect(stages[stages.length - 1].note).toBe('done: 10 v2 replica(s) carry all traffic');
  });

  test('a replica-count change with a new version finishes (3 → 4 at 30%: 2 canaries beside 3 primaries)', () => {
    const stages = simulateRollout({ fromSpec: spec('replicas: 3\n'), fromVersion: 1, toVersion: 2, toSpec: spec('replicas: 4\nenv: {MODEL: b}\nrollout: {strategy: canary, steps: [{weight: 30}]}\n') });
    expect(stages.map(row)).toEqual([
      'C2 0% · P3 100%',
      'C2 30% · P3 70%',
      'C2 50% · P2 50%',
      'C3 50% · P2 50%',
      'C3 75% · P1 25%',
      'C4 75% · P1 25%',
      'C4 100% · P0 0%',
    ]);
  });

  test.each([
    [1, 8, 'max_surge_percent: 13'],
    [2, 4, 'max_surge: 1'],
    [4, 3, 'max_surge: 1'],
    [4, 6, 'max_surge: 1'],
  ])('Np %p → Nc %p (%s) finishes at Nc canaries', (np, nc, surge) => {
    const stages = simulateRollout({ fromSpec: spec(`replicas: ${np}\n`), fromVersion: 1, toVersion: 2, toSpec: spec(`replicas: ${nc}\nrollout: {strategy: canary, ${surge}, steps: [{weight: 50}]}\n`) });
    expect(row(stages[stages.length - 1])).toBe(`C${nc} 100% · P0 0%`);
  });

  test('rolling through the replica-led planner: one at a time (surge 1)', () => {
    const stages = simulateRollout({ fromSpec: spec('replicas: 2\n'), fromVersion: 1, toVersion: 2, toSpec: spec('replicas: 2\nenv: {MODEL: b}\n') });
    expect(stages.map((s) => `${row(s)} | ${s.note}`)).toEqual([
      'C1 0% · P2 100% | launching 1 v2 replica(s)',
      'C1 50% · P1 50% | removing 1 v1 replica(s) replaced by ready v2',
      'C2 50% · P1 50% | launching 1 v2 replica(s)',
      'C2 100% · P0 0% | done: 2 v2 replica(s) ready',
    ]);
  });

  test('blue_green through the replica-led planner: the whole new fleet, then one flip', () => {
    const stages = simulateRollout({ fromSpec: spec('replicas: 2\n'), fromVersion: 1, toVersion: 2, toSpec: spec('replicas: 2\nrollout: {strategy: blue_green}\n') });
    expect(stages.map(row)).toEqual(['C2 0% · P2 100%', 'C2 100% · P0 0%']);
  });

  test('a first deploy launches the whole fleet, even with canary steps (nothing to compare against)', () => {
    const stages = simulateRollout({ fromVersion: 0, toVersion: 1, toSpec: spec('replicas: 2\nrollout: {strategy: canary, steps: [{weight: 10}]}\n') });
    expect(stages.map((s) => [s.canaryReplicas, s.canaryPercent])).toEqual([
      [2, 0],
      [2, 100],
    ]);
    expect(stages[stages.length - 1].note).toBe('done: 2 v1 replica(s) ready');
  });

  test('from observed replicas: a fleet already half-way (PP CC of v4 at v3 → v4) goes on from there', () => {
    const observed: ObservedReplica[] = [
      { id: 'a', version: 3, status: 'READY' },
      { id: 'b', version: 3, status: 'READY' },
      { id: 'c', version: 4, status: 'READY' },
      { id: 'd', version: 4, status: 'READY' },
    ];
    const stages = simulateRollout({ fromSpec: spec('replicas: 4\n'), fromVersion: 3, toVersion: 4, toSpec: spec('replicas: 4\nrollout: {strategy: canary}\n'), observed });
    expect(row(stages[0])).toBe('C3 50% · P2 50%');
    expect(row(stages[stages.length - 1])).toBe('C4 100% · P0 0%');
  });
});

describe('decideDeploy', () => {
  const serving = spec('replicas: 2\nenv: {MODEL_VERSION: "1"}\n');
  test.each([
    ['first deploy → rollout', undefined, serving, false, 'rollout', [], /first deploy/],
    ['env change → rollout', serving, spec('replicas: 2\nenv: {MODEL_VERSION: "2"}\n'), false, 'rollout', ['env.MODEL_VERSION'], /env.MODEL_VERSION changed: new replicas needed/],
    ['run change → rollout', serving, { ...serving, run: 'serve2' }, false, 'rollout', ['run'], /run changed/],
    ['replicas only → in place', serving, { ...serving, replicas: 3 }, false, 'in_place', ['replicas'], /only replicas changed: applied in place/],
    ['replicas, rollout and readiness_probe → in place', serving, spec('replicas: 3\nenv: {MODEL_VERSION: "1"}\nreadiness_probe: /ready\nrollout: {strategy: canary, timeout: 1h}\n'), false, 'in_place', ['readiness_probe.path', 'replicas', 'rollout.strategy', 'rollout.timeout'], /in place/],
    ['replicas and env → rollout, naming only env', serving, spec('replicas: 3\nenv: {MODEL_VERSION: "2"}\n'), false, 'rollout', ['env.MODEL_VERSION', 'replicas'], /^env.MODEL_VERSION changed/],
    ['no change → unchanged', serving, spec('replicas: 2\nenv: {MODEL_VERSION: "1"}\n'), false, 'unchanged', [], /--force/],
    ['no change with force → rollout', serving, serving, true, 'rollout', [], /--force: every replica is replaced/],
    ['in-place change with force → rollout', serving, { ...serving, replicas: 3 }, true, 'rollout', ['replicas'], /--force/],
  ] as const)('%s', (_name, from, to, force, mode, changes, reason) => {
    const d = decideDeploy(from, to, force);
    expect(d.mode).toBe(mode);
    expect(d.changes).toEqual(changes);
    expect(d.reason).toMatch(reason);
  });
});
