/**
 * What a rollout costs, from the stages `rollout plan` simulates (simulate.ts): how long it takes
 * and how many replica-hours it runs above the steady state. Pure: no I/O, no clock, no prices
 * looked up here (the caller passes the price of one replica-hour).
 *
 * The model, stage by stage (a stage's replicas, loading ones included, are alive through it):
 *  - a stage that launched replicas lasts the load time (they are READY at its end);
 *  - a stage that only moves traffic or removes replicas takes no time (drain and terminate
 *    are not counted);
 *  - a timed pause step holds for its duration; a `{pause: {}}` step has no bound: it counts
 *    zero and makes the figures lower bounds;
 *  - with analysis (traffic-led rollouts), a step other than the last ends no earlier than the
 *    first check after it began: checks every `interval` from when the canary first has
 *    traffic (that first reading is the baseline, not a check), each assumed to pass.
 * Extra replica-seconds = Σ duration × max(0, alive − steadyReplicas): replicas below the
 * steady state (max_unavailable) are no saving to count against the surge.
 *
 * Worked example (2 replicas, rolling, surge 1, load time 60 s):
 *   C1 P2 launching (3 alive, 60 s) · C1 P1 (0 s) · C2 P1 launching (3 alive, 60 s) · C2 P0 done
 *   → 120 s; extra 1 replica × 120 s = 0.0333 replica-hours; × 1 GPU; × $1.006 = $0.0335
 * Canary 4 replicas, [{weight: 10}, {pause: 10m}, {weight: 100}], load 60 s, no analysis:
 *   launch 1 (5 alive, 60 s) · pause (5 alive, 600 s) · then 3 more launches of 1 (5 alive, 60 s
 *   each) → 840 s, 1 × 840 s = 0.2333 replica-hours
 */
import { parseDurationMs } from '../spec/duration';
import type { CanaryStep } from '../spec/types';
import type { PlanStage } from './simulate';

export interface EstimateInput {
  /** The rollout's stages: simulateRollout's, or a plan's own (an in-place scale, with `launched`). */
  stages: PlanStage[];
  /**
   * The steps the stages' `step` numbers point into (`canarySteps(toSpec)`); read only when the
   * stages carry steps (a traffic-led rollout from a serving version).
   */
  steps: CanaryStep[];
  /** The target spec's `replicas`: the extras are counted above it. */
  steadyReplicas: number;
  /** Seconds from a replica's launch until it is READY. */
  loadSeconds: number;
  /** The analysis interval in seconds, when the spec has analysis (it gates traffic-led steps). */
  analysisIntervalSeconds?: number;
  gpusPerReplica: number;
  /** What one replica (its instance) costs per hour; absent: unknown or free (no dollar figure). */
  usdPerReplicaHour?: number;
}

export interface RolloutEstimate {
  /** Seconds from start to done, leaving out what `lowerBound` says. */
  durationSeconds: number;
  /** ∫ max(0, replicas alive − steady replicas) dt, in hours. */
  extraReplicaHours: number;
  /** extraReplicaHours × GPUs per replica. */
  extraGpuHours: number;
  /** extraReplicaHours × the price of a replica-hour, when known. */
  extraCostUsd?: number;
  /** `{pause: {}}` steps the rollout holds at until told to go on: their time is not counted. */
  indefinitePauses: number;
  /** The most replicas above the steady state while held at one of those pauses (cost per hour held). */
  extraReplicasWhileHeld: number;
  /** True when time is left out (an indefinite pause, or the plan stopped early): the figures are lower bounds. */
  lowerBound: boolean;
}

export function estimateRollout(input: EstimateInput): RolloutEstimate {
  const { stages, steadyReplicas, loadSeconds } = input;
  let seconds = 0;
  let extraReplicaSeconds = 0;
  let indefinitePauses = 0;
  let extraReplicasWhileHeld = 0;
  const alive = (stage: PlanStage | undefined): number => (stage ? stage.canaryReplicas + stage.primaryReplicas : 0);
  const hold = (replicas: number, duration: number): void => {
    seconds += duration;
    extraReplicaSeconds += duration * Math.max(0, replicas - steadyReplicas);
  };
  const pass = (stage: PlanStage): void => hold(alive(stage), stage.launched ? loadSeconds : 0);

  const truncated = stages.some((s) => s.truncated === true);
  const stepped = stages.some((s) => s.step !== undefined);
  if (!stepped) {
    stages.forEach(pass);
  } else {
    // A plan that stopped early is walked only as far as it got (its later steps were never planned).
    const lastStep = truncated ? Math.max(...stages.map((s) => s.step ?? 0)) : input.steps.length - 1;
    const interval = input.analysisIntervalSeconds;
    let next = 0;
    let current: PlanStage | undefined;
    /** When the canary first had traffic: the analysis's baseline reading. */
    let trafficSince: number | undefined;
    for (let k = 0; k <= lastStep; k++) {
      const step = input.steps[k];
      const stepStart = seconds;
      for (; next < stages.length && stages[next].step === k; next++) {
        if (trafficSince === undefined && stages[next].canaryPercent > 0) trafficSince = seconds;
        pass(stages[next]);
        current = stages[next];
      }
      if (step && 'pause' in step && !step.pause.duration) {
        // Held until someone lets it go on: no bound to count (and no check to wait for after).
        indefinitePauses++;
        extraReplicasWhileHeld = Math.max(extraReplicasWhileHeld, alive(current) - steadyReplicas);
        continue;
      }
      if (step && 'pause' in step && step.pause.duration) hold(alive(current), parseDurationMs(step.pause.duration) / 1000);
      if (interval !== undefined && interval > 0 && k < input.steps.length - 1) {
        const checkAt = firstCheckAfter(stepStart, trafficSince ?? stepStart, interval);
        if (seconds < checkAt) hold(alive(current), checkAt - seconds);
      }
    }
  }

  const extraReplicaHours = extraReplicaSeconds / 3600;
  return {
    durationSeconds: seconds,
    extraReplicaHours,
    extraGpuHours: extraReplicaHours * input.gpusPerReplica,
    ...(input.usdPerReplicaHour !== undefined ? { extraCostUsd: extraReplicaHours * input.usdPerReplicaHour } : {}),
    indefinitePauses,
    extraReplicasWhileHeld,
    lowerBound: indefinitePauses > 0 || truncated,
  };
}

/**
 * The first analysis check strictly after `stepStart` (one at the very moment a step begins
 * counted for the step before: it is what let that one go on). Checks come every `interval`
 * after the baseline reading at `baseline`.
 *
 *   baseline 60, interval 60: step from 0 → 120; from 120 → 180; from 150 → 180
 */
export function firstCheckAfter(stepStart: number, baseline: number, interval: number): number {
  const n = Math.max(1, Math.floor((stepStart - baseline) / interval) + 1);
  return baseline + n * interval;
}
