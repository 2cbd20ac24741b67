/**
 * What a spec's rollout section means for the rollout's course. Pure.
 *
 *   strategy canary, steps [{weight: 10}, {pause: {}}, {weight: 50}] → the same, then {weight: 100}
 *   strategy canary, no steps                                        → [{weight: 100}]
 *   strategy rolling, max_surge_percent 25                           → [{weight: 100}], traffic-led
 *   strategy rolling or blue_green otherwise                         → replica-led (planner.ts)
 */
import type { CanaryStep, ServiceSpec } from '../spec/types';
import { resolveLimits } from './limits';

/** The canary steps to walk, always ending at weight 100 (Argo promotes fully after the last step). */
export function canarySteps(spec: ServiceSpec): CanaryStep[] {
  const steps = spec.rollout.strategy === 'canary' && spec.rollout.steps ? [...spec.rollout.steps] : [];
  const lastWeight = [...steps].reverse().find((s): s is { weight: number } => 'weight' in s);
  if (lastWeight?.weight !== 100) steps.push({ weight: 100 });
  return steps;
}

/** True when the traffic-led planner (canary.ts) drives the rollout rather than the replica-led one. */
export function isTrafficLed(spec: ServiceSpec): boolean {
  return spec.rollout.strategy === 'canary' || (spec.rollout.strategy === 'rolling' && spec.rollout.max_surge_percent !== undefined);
}

/** The surge room in percent of the steady state: `max_surge_percent`, else `max_surge` replicas. */
export function surgePercentOf(spec: ServiceSpec): number {
  if (spec.rollout.max_surge_percent !== undefined) {
    // Whole replicas only: 30% of 4 replicas is one replica (25%), never 1.2.
    return (Math.floor((spec.replicas * spec.rollout.max_surge_percent) / 100) * 100) / spec.replicas;
  }
  return (resolveLimits(spec.replicas, spec.rollout.max_surge, spec.rollout.max_unavailable).maxSurge * 100) / spec.replicas;
}

/** "pause 10m", "pause until resumed", "weight 50%": how a step reads in notes and tables. */
export function describeStep(step: CanaryStep): string {
  if ('weight' in step) return `weight ${step.weight}%`;
  return step.pause.duration ? `pause ${step.pause.duration}` : 'pause until resumed';
}
