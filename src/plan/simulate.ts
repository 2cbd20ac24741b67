/**
 * `rollout plan`: the stages a rollout goes through when every replica becomes READY at once,
 * computed by the same planners the workflow uses. Pure.
 *
 * Worked example (4 replicas of v1 → v2, canary steps [{weight: 25}, {pause: {}}], surge 1):
 *   canary 1 0% · primary 4 100%   launching 1 v2 replica(s)
 *   canary 1 25% · primary 4 75%   holding at v2 25%
 *   canary 1 25% · primary 4 75%   pause until resumed
 *   canary 1 25% · primary 3 75%   … then canary 2 50% … → canary 4 100% · primary 0 0%
 *
 * Each stage also says what it waits for, for the estimate (estimate.ts): `launched` replicas to
 * load, and (traffic-led) the canary `step` it belongs to, e.g. the pause it holds at.
 */
import type { ServiceSpec } from '../spec/types';
import { planCanaryStep } from './canary';
import { planStep } from './planner';
import { canarySteps, describeStep, isTrafficLed, surgePercentOf } from './steps';
import { trafficPercentByVersion } from './traffic';
import type { ObservedReplica, PlanStep } from './types';

export interface PlanStage {
  canaryReplicas: number;
  canaryPercent: number;
  primaryReplicas: number;
  primaryPercent: number;
  note: string;
  /**
   * Replicas launched on the way into this stage (either version): the stage lasts until they are
   * READY, i.e. their load time. Absent: none (the stage only moves traffic or removes replicas).
   */
  launched?: number;
  /**
   * Traffic-led rollouts (canary steps, constrained surge): the index in `canarySteps(toSpec)` of
   * the step this stage belongs to. A pause step has exactly one stage (it holds there).
   */
  step?: number;
  /** Set on the last stage when the simulation stopped early (see PLAN_WORK_BUDGET). */
  truncated?: true;
}

export interface SimulationInput {
  toSpec: ServiceSpec;
  toVersion: number;
  /** The serving spec; absent: a first deploy. */
  fromSpec?: ServiceSpec;
  fromVersion: number;
  /** The replicas as they are now; absent: `fromSpec.replicas` READY replicas of `fromVersion`. */
  observed?: ObservedReplica[];
}

/**
 * How much simulating `rollout plan` does at most, in planner calls × replicas (each call is
 * linear in the replicas): about a second, or whatever a plain rollout of every replica needs. A
 * spec far beyond it (1000 replicas moved one at a time through dozens of canary steps) gets the
 * stages up to there and a last one saying the plan stops there; the rollout has no such limit.
 */
export const PLAN_WORK_BUDGET = 4_000_000;

class PlanBudgetSpent extends Error {}

export function simulateRollout(input: SimulationInput): PlanStage[] {
  let seq = 0;
  let observed: ObservedReplica[] =
    input.observed ??
    Array.from({ length: input.fromSpec ? input.fromSpec.replicas : 0 }, () => ({ id: `r${String(++seq).padStart(6, '0')}`, version: input.fromVersion, status: 'READY' as const }));
  seq = Math.max(seq, observed.length);
  const stages: PlanStage[] = [];
  /** Launched since the last recorded stage: they load during the next one (the estimate's load waits). */
  let unrecordedLaunches = 0;
  /** The canary step being walked (traffic-led only). */
  let stepIndex: number | undefined;
  const record = (canaryPercent: number, note: string): void => {
    const canaryReplicas = observed.filter((r) => r.version === input.toVersion).length;
    const last = stages[stages.length - 1];
    const launched = unrecordedLaunches;
    unrecordedLaunches = 0;
    // A step that changed nothing only renames the stage it ends (and keeps its step: a pause
    // stage renamed by the next step still is where the pause held).
    if (last && last.canaryReplicas === canaryReplicas && last.canaryPercent === round(canaryPercent) && last.primaryReplicas === observed.length - canaryReplicas) {
      last.note = note;
      if (launched > 0) last.launched = (last.launched ?? 0) + launched;
      return;
    }
    const primaryReplicas = observed.length - canaryReplicas;
    // Before a first deploy's replicas are ready nothing serves: 0% on both sides.
    const primaryPercent = primaryReplicas === 0 && canaryPercent === 0 ? 0 : round(100 - canaryPercent);
    stages.push({ canaryReplicas, canaryPercent: round(canaryPercent), primaryReplicas, primaryPercent, note, ...stageFacts(launched) });
  };
  const stageFacts = (launched: number): Pick<PlanStage, 'launched' | 'step'> => ({
    ...(launched > 0 ? { launched } : {}),
    ...(stepIndex !== undefined ? { step: stepIndex } : {}),
  });
  /** Removed replicas are gone and launched ones READY by the next step. */
  const apply = (step: PlanStep, launches: { version: number; count: number }[]): void => {
    const removed = new Set(step.remove);
    observed = observed.filter((r) => !removed.has(r.id));
    for (const { version, count } of launches) {
      for (let i = 0; i < count; i++) observed.push({ id: `r${String(++seq).padStart(6, '0')}`, version, status: 'READY' });
      unrecordedLaunches += count;
    }
  };
  let iterations = 0;
  const replicas = input.toSpec.replicas + (input.fromSpec?.replicas ?? 0);
  // Every plain rollout fits (one replica at a time takes two planner calls per replica).
  const maxIterations = Math.max(4 * replicas + 100, Math.floor(PLAN_WORK_BUDGET / Math.max(1, replicas)));
  const guard = (): void => {
    if (++iterations > maxIterations) throw new PlanBudgetSpent();
  };
  try {
    return simulateStages();
  } catch (err) {
    if (!(err instanceof PlanBudgetSpent)) throw err;
    const last = stages[stages.length - 1] ?? { canaryReplicas: 0, canaryPercent: 0, primaryReplicas: 0, primaryPercent: 0 };
    const note = `… the plan stops here, after ${maxIterations} planner steps for ${input.toSpec.replicas} replica(s); the rollout goes on the same way to the end`;
    // The same replicas as the last stage, nothing launched into it: it stands for the unplanned rest.
    stages.push({ canaryReplicas: last.canaryReplicas, canaryPercent: last.canaryPercent, primaryReplicas: last.primaryReplicas, primaryPercent: last.primaryPercent, note, truncated: true });
    return stages;
  }

  function simulateStages(): PlanStage[] {
    if (!input.fromSpec || input.fromVersion === 0 || !isTrafficLed(input.toSpec)) {
      for (;;) {
        guard();
        const step = planStep({
          strategy: input.toSpec.rollout.strategy,
          replicas: input.toSpec.replicas,
          maxSurge: input.toSpec.rollout.max_surge,
          maxUnavailable: input.toSpec.rollout.max_unavailable,
          targetVersion: input.toVersion,
          observed,
        });
        apply(step, [{ version: input.toVersion, count: step.launch }]);
        const pct = trafficPercentByVersion(step.traffic)[String(input.toVersion)] ?? 0;
        record(pct, step.note);
        if (step.done) return stages;
      }
    }

    const fromSpec = input.fromSpec;
    let canaryPercent = 0;
    for (const [index, s] of canarySteps(input.toSpec).entries()) {
      stepIndex = index;
      if (!('weight' in s)) {
        const canaryReplicas = observed.filter((r) => r.version === input.toVersion).length;
        stages.push({ canaryReplicas, canaryPercent: round(canaryPercent), primaryReplicas: observed.length - canaryReplicas, primaryPercent: round(100 - canaryPercent), note: describeStep(s), step: index });
        continue;
      }
      for (;;) {
        guard();
        const step = planCanaryStep({
          canary: { version: input.toVersion, replicas: input.toSpec.replicas },
          primary: { version: input.fromVersion, replicas: fromSpec.replicas },
          weight: s.weight,
          rollingBack: false,
          surgePercent: surgePercentOf(input.toSpec),
          observed,
        });
        apply(step, [
          { version: input.toVersion, count: step.launch },
          { version: input.fromVersion, count: step.launchPrimary },
        ]);
        canaryPercent = step.canaryPercent;
        if (step.reached) break;
        record(canaryPercent, step.note);
      }
      record(canaryPercent, s.weight === 100 ? `done: ${input.toSpec.replicas} v${input.toVersion} replica(s) carry all traffic` : `${describeStep(s)} reached`);
    }
    return stages;
  }
}

const round = (x: number): number => Math.round(x * 10) / 10;
