// The planner's public API: pure functions shared by the workflows and the CLI.
export { planStep } from './planner';
export { resolveLimits, parseQuantity } from './limits';
export { trafficPercentByVersion } from './traffic';
export type { ObservedReplica, PlanInput, PlanStep, ReplicaStatus, RolloutLimits, TrafficWeight } from './types';
