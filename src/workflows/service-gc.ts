/**
 * A service's stray replicas, from its own workflow: `rollout gc` (the `gc` update), and the
 * clean-up after a rollout workflow that itself failed (cancelled or terminated from the UI or
 * the `temporal` CLI, so it never rolled back). Owned means: in the service's replica records
 * (which also hold what self-healing is launching: a record precedes its launch). A rollout in
 * progress owns replicas the service does not know yet, so gc refuses to run during one.
 * Workflow code: deterministic, no I/O.
 */
import { ApplicationFailure, log, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { ServiceSpec } from '../spec/types';
import { failureMessage } from './failure-message';
import { GC_START_WITHIN_MS } from './gc-limits';
import { findStrays, ownedSince, sweepStrayReplicas, terminateStrays } from './stray-sweep';
import { GC_FAILED, serviceWorkflowId, type GcInput, type GcResult, type ServiceState } from './types';

const { setTraffic, serviceWorkflowRunning } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '5 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 30 },
});

const owns = (state: ServiceState, replicaId: string) => state.replicas.some((r) => r.id === replicaId);

/** Why gc cannot run now, or undefined. */
export function gcRefusal(state: ServiceState, pendingVersion: number | undefined): string | undefined {
  const running = state.activeRollout?.version ?? pendingVersion;
  if (running !== undefined) return `a rollout of ${state.name} v${running} is in progress: its replicas are not strays; run gc once it has ended`;
  return undefined;
}

/**
 * Every replica of the service that no record owns, on every provider the worker has; terminated
 * unless dry run. `busy()`: a rollout started while the providers were being listed; then nothing
 * is terminated (its first replicas may be among those listed).
 */
export async function collectGarbage(state: ServiceState, input: GcInput, busy: () => boolean): Promise<GcResult> {
  return failingClearly(state.name, async () => {
    const dryRun = input?.dryRun === true;
    const keep = state.replicas.map((r) => r.id);
    const found = (await findStrays({ service: state.name, keepReplicaIds: keep }, `gc ${state.name}`, 'interactive')).filter((s) => !ownedSince(keep, s, (id) => owns(state, id)));
    if (busy()) return { service: state.name, dryRun, strays: found, terminated: [], note: 'a rollout started meanwhile: nothing was terminated; run gc again once it has ended' };
    if (!dryRun) await terminateStrays(state.name, found, 'interactive');
    return { service: state.name, dryRun, strays: found, terminated: dryRun ? [] : found.map((s) => s.replicaId || s.externalId) };
  });
}

/**
 * The same for a service that has no running workflow (never deployed here, or its workflow was
 * terminated): nothing owns any of its replicas.
 */
export async function collectGarbageOfGone(service: string, input: GcInput): Promise<GcResult> {
  const dryRun = input?.dryRun === true;
  // A gc nobody picked up while its caller waited (no worker: the CLI gave up) must not act later.
  const waitedMs = Date.now() - workflowInfo().startTime.getTime();
  const within = input?.startWithinMs ?? GC_START_WITHIN_MS;
  if (waitedMs > within) {
    return { service, dryRun, strays: [], terminated: [], note: `not run: no worker picked this gc up within ${within / 1000} s of its start (it waited ${Math.round(waitedMs / 1000)} s); run it again` };
  }
  return failingClearly(service, async () => {
    const found = await findStrays({ service, keepReplicaIds: [] }, `gc ${service}`, 'interactive');
    // A deploy may have started the service while the providers were listed: its first replicas
    // would be among them. It owns them now: nothing is terminated.
    if (!dryRun && found.length && (await serviceWorkflowRunning.executeWithOptions({ summary: `is ${serviceWorkflowId(service)} running?` }, [{ workflowId: serviceWorkflowId(service) }]))) {
      return { service, dryRun, strays: found, terminated: [], note: `${service} was deployed while its replicas were being listed: nothing was terminated; run gc again (the service answers it now)` };
    }
    if (!dryRun) await terminateStrays(service, found, 'interactive');
    return { service, dryRun, strays: found, terminated: dryRun ? [] : found.map((s) => s.replicaId || s.externalId) };
  });
}

/** A provider that cannot list or terminate fails the gc with its own words (type GcFailed), not "activity task failed". */
async function failingClearly(service: string, gc: () => Promise<GcResult>): Promise<GcResult> {
  try {
    return await gc();
  } catch (err) {
    throw ApplicationFailure.create({ type: GC_FAILED, message: `gc of ${service} failed: ${failureMessage(err)}`, nonRetryable: true });
  }
}

/**
 * After a rollout workflow failed on its own account (not a rollback: it was cancelled or
 * terminated): traffic back on the serving replicas the service knows, then every replica of the
 * failed version terminated (self-healing then replaces serving ones the rollout had removed).
 */
export async function recoverFromFailedRollout(state: ServiceState, version: number, spec: ServiceSpec): Promise<void> {
  try {
    const ready = state.replicas.filter((r) => r.status === 'READY' && r.endpoint);
    if (state.version > 0) {
      await setTraffic.executeWithOptions({ summary: `traffic: back on v${state.version}` }, [
        { service: state.name, backends: ready.map((r) => ({ replicaId: r.id, version: r.version, url: r.endpoint ?? '', weight: 1 })) },
      ]);
    }
    const providers = [...new Set([spec.resources.provider, ...(state.spec ? [state.spec.resources.provider] : [])])];
    const swept = await sweepStrayReplicas(
      { service: state.name, keepReplicaIds: state.replicas.map((r) => r.id), versions: [version], providers },
      { stillOwned: (id) => owns(state, id), summary: `v${version} of ${state.name}` },
    );
    if (swept.length) log.warn('terminated the failed rollout\'s replicas', { version, replicas: swept.map((s) => s.replicaId) });
  } catch (err) {
    log.error('could not clean up after the failed rollout', { version, error: String(err) });
  }
}
