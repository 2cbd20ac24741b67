// The planner's public API: pure functions shared by the workflows and the CLI.
export { planStep } from './planner';
export { planCanaryStep } from './canary';
export { canarySteps, describeStep, isTrafficLed, surgePercentOf } from './steps';
export { simulateRollout, type PlanStage, type SimulationInput } from './simulate';
export { estimateRollout, firstCheckAfter, type EstimateInput, type RolloutEstimate } from './estimate';
export { resolveLimits, parseQuantity } from './limits';
export { trafficPercentByVersion } from './traffic';
export type { CanaryPlanInput, CanaryPlanStep, ObservedReplica, PlanInput, PlanStep, ReplicaStatus, RolloutLimits, TrafficWeight } from './types';
export { judgeCanary, tallyChecks, versionWindow, windowBetween, NO_CHECKS } from './analysis';
export type { AnalysisCheck, AnalysisThresholds, CanaryJudgement, CheckTally, HistogramBucket, JudgeCanaryInput, StatsSnapshot, Verdict, VersionCounters, VersionWindow } from './analysis';
export { gpuShortfall } from './gpu-fit';
export { healingBackoffMs, isWhole, judgeReplica, markLost, type LostReplica, type ReplicaJudgement, type ReplicaObservation } from './healing';
export { extraProbesAt, learnLoadTime, type LoadTimeBounds, type ReadinessSeen } from './load-time';
