/**
 * Finding and terminating a service's stray replicas from a workflow (see
 * activities/stray-replicas.ts): at a rollout's end, after a rollout workflow failed, and for
 * `rollout gc`. Workflow code: deterministic, no I/O.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import type { FindStrayReplicasInput, StrayReplica } from '../activities/stray-replicas';
import { HEARTBEAT_TIMEOUT } from './heartbeat-timeout';

type Activities = ReturnType<typeof createActivities>;

const PERMANENT = ['InvalidRequest', 'CredentialsError', 'ProviderNotConfigured'];

// A listing is one paginated call per provider; terminating waits for each replica to stop
// (its grace period, an instance shutting down): both heartbeat. At a rollout's end there is
// time to ride out a provider's bad minutes; someone waiting on `rollout gc` gets an answer
// within seconds instead (and can run it again).
const activities = {
  sweep: proxyActivities<Activities>({
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 20, nonRetryableErrorTypes: PERMANENT },
  }),
  interactive: proxyActivities<Activities>({
    startToCloseTimeout: '15 minutes',
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '4s', maximumAttempts: 3, nonRetryableErrorTypes: PERMANENT },
  }),
};
export type SweepPace = keyof typeof activities;

/** What the providers hold for the service that `input` does not keep. */
export function findStrays(input: FindStrayReplicasInput, summary: string, pace: SweepPace = 'sweep'): Promise<StrayReplica[]> {
  return activities[pace].findStrayReplicas.executeWithOptions({ summary: `find strays: ${summary}` }, [input]);
}

export async function terminateStrays(service: string, strays: StrayReplica[], pace: SweepPace = 'sweep'): Promise<void> {
  if (strays.length === 0) return;
  await activities[pace].terminateStrayReplicas.executeWithOptions({ summary: `terminate ${strays.map((s) => s.replicaId || s.externalId).join(', ')}` }, [
    { service, replicas: strays.map(({ provider, replicaId, externalId }) => ({ provider, replicaId, externalId })) },
  ]);
}

/**
 * Whether a listed stray is a replica the workflow came to own after the listing's keep list was
 * made (its record precedes its launch). One whose id was kept already is listed only because the
 * provider marks it a stray (a duplicate, tags that disagree with the id): it stays a stray.
 */
export function ownedSince(keptAtStart: string[], stray: StrayReplica, ownedNow: ((replicaId: string) => boolean) | undefined): boolean {
  return !!stray.replicaId && !keptAtStart.includes(stray.replicaId) && ownedNow?.(stray.replicaId) === true;
}

/**
 * The strays, filtered again by `stillOwned` once listed (what the workflow came to own while the
 * listing ran), then terminated. Returns what was terminated.
 */
export async function sweepStrayReplicas(input: FindStrayReplicasInput, opts: { stillOwned?: (replicaId: string) => boolean; summary: string }): Promise<StrayReplica[]> {
  const strays = (await findStrays(input, opts.summary)).filter((s) => !ownedSince(input.keepReplicaIds, s, opts.stillOwned));
  await terminateStrays(input.service, strays);
  return strays;
}
