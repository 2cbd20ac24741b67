/**
 * Every message the workflows accept, declared in one place (signals, updates, queries).
 * Names are the wire names: `temporal workflow signal --name pause` uses them as-is.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { DeployInput, DeployResult, RollbackInput, RolloutStatus, ServiceStatus } from './types';

// Service workflow
export const deployUpdate = defineUpdate<DeployResult, [DeployInput]>('deploy');
export const serviceStatusQuery = defineQuery<ServiceStatus>('status');

// Rollout workflow (the service workflow forwards the same signals to its active rollout)
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
export const rollbackSignal = defineSignal<[RollbackInput?]>('rollback');
export const rolloutStatusQuery = defineQuery<RolloutStatus>('status');
