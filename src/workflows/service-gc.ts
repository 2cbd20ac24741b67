/**
 * A service's stray replicas, from its own workflow: `rollout gc` (the `gc` update), and the
 * clean-up after a rollout workflow that itself failed (cancelled or terminated from the UI or
 * the `temporal` CLI, so it never rolled back). Owned means: in the service's replica records
 * (which also hold what self-healing is launching: a record precedes its launch). A rollout in
 * progress owns replicas the service does not know yet, so gc refuses to run during one.
 * Workflow code: deterministic, no I/O.
 */
import { ApplicationFailure, log, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { ServiceSpec } from '../spec/types';
import { failureMessage } from './failure-message';
import { findStrays, sweepStrayReplicas, terminateStrays } from './stray-sweep';
import { GC_FAILED, type GcInput, type GcResult, type ServiceState } from './types';

const { setTraffic } = proxyActivities<ReturnType<typeof createActivities>>({
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
    const found = (await findStrays({ service: state.name, keepReplicaIds: state.replicas.map((r) => r.id) }, `gc ${state.name}`, 'interactive')).filter((s) => !owns(state, s.replicaId));
    if (busy()) return { service: state.name, dryRun, strays: found, terminated: [], note: 'a rollout started meanwhile: nothing was terminated; run gc again once it has ended' };
    if (!dryRun) await terminateStrays(found, 'interactive');
    return { service: state.name, dryRun, strays: found, terminated: dryRun ? [] : found.map((s) => s.replicaId) };
  });
}

/**
 * The same for a service that has no running workflow (never deployed here, or its workflow was
 * terminated): nothing owns any of its replicas.
 */
export async function collectGarbageOfGone(service: string, input: GcInput): Promise<GcResult> {
  return failingClearly(service, async () => {
    const dryRun = input?.dryRun === true;
    const found = await findStrays({ service, keepReplicaIds: [] }, `gc ${service}`, 'interactive');
    if (!dryRun) await terminateStrays(found, 'interactive');
    return { service, dryRun, strays: found, terminated: dryRun ? [] : found.map((s) => s.replicaId) };
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
