/**
 * Every message the workflows accept, declared in one place (signals, updates, queries).
 * Names are the wire names: `temporal workflow signal --name pause` uses them as-is.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { ControlRequest, DeployInput, DeployResult, GcInput, GcResult, RollbackInput, RolloutStatus, ServiceStatus } from './types';

// Service workflow
export const deployUpdate = defineUpdate<DeployResult, [DeployInput]>('deploy');
export const serviceStatusQuery = defineQuery<ServiceStatus>('status');
/** `rollout gc`: the service's replicas that no record owns, terminated unless `dryRun`. */
export const gcUpdate = defineUpdate<GcResult, [GcInput]>('gc');

// Rollout workflow (the service workflow forwards the same signals to its active rollout)
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const rollbackSignal = defineSignal<[RollbackInput?]>('rollback');
export const advanceSignal = defineSignal('advance');
export const promoteSignal = defineSignal('promote');
/** Argument: a number 0–100 (`--input 30`), or `{percent: 30}`. Anything else is recorded and ignored. */
export const setCanaryPercentSignal = defineSignal<[unknown]>('setCanaryPercent');
export const rolloutStatusQuery = defineQuery<RolloutStatus>('status');
/**
 * The update form of every control signal: validated before it enters history (a refusal
 * changes nothing) and answered with the rollout's status after it took effect.
 * Accepted by the rollout workflow, and by the service workflow, which forwards it.
 */
export const controlUpdate = defineUpdate<RolloutStatus, [ControlRequest]>('control');
