/**
 * Self-healing between rollouts (as SkyServe's replica manager): the service workflow watches
 * its serving replicas; one whose process exits or whose probe fails `failure_threshold` times
 * in a row is taken out of traffic at once and replaced by a new replica of the same version.
 * The decisions are the planner's (`planStep` with the serving version as target: FAILED
 * replicas go, replacements come up to `replicas`, traffic only on READY ones); this file only
 * carries them out. Workflow code: deterministic, no I/O.
 */
import { ActivityFailure, condition, patched } from '@temporalio/workflow';
import { healingBackoffMs, markLost, planStep, type LostReplica } from '../plan';
import { PATCHES } from './patches';
import { ReplicaFleet } from './replica-fleet';
import type { ReplicaStateReporter } from './replica-states';
import { watchServing } from './serving-watch';
import type { ServiceState } from './types';

/** How long self-healing waits after a removal failed for good before it tries again. */
const REMOVAL_RETRY_MS = 60_000;

/** Watches the serving replicas for one window; the lost ones, or [] (window over, or interrupted). */
export function watchServiceReplicas(state: ServiceState, interrupt: () => boolean): Promise<LostReplica[]> {
  const spec = state.spec;
  if (!spec) return Promise.resolve([]);
  const replicas = state.replicas.flatMap((r) => (r.status === 'READY' && r.endpoint ? [{ replicaId: r.id, endpoint: r.endpoint }] : []));
  return watchServing({ service: state.name, provider: spec.resources.provider, probe: spec.readiness_probe, replicas, interrupt, idle: true });
}

/**
 * Replaces the lost replicas (and any other that is not READY) until `replicas` READY replicas
 * of the serving version serve again. Replacements that fail are retried with a growing wait
 * (healingBackoffMs). When `interrupt()` holds (a deploy arrived), what is still loading is
 * removed and the READY replicas are handed over as they are.
 *
 * A removal goes on while the replacement launches (where max_surge leaves room: the planner
 * counts a replica on its way out as occupying a slot, and its GPUs as held): a hung replica
 * ignores SIGTERM and takes its whole grace period to stop, and the service must not stay
 * short for that long.
 */
export async function healService(state: ServiceState, lost: LostReplica[], interrupt: () => boolean, replicaStates?: ReplicaStateReporter): Promise<void> {
  const spec = state.spec;
  if (!spec) return;
  const version = state.version;
  state.replicas = markLost(state.replicas, lost);
  state.healing = { replaced: state.healing?.replaced ?? 0, lastLost: lost.map((l) => l.reason).join('; '), lastLostAt: Date.now() };
  const fleet = new ReplicaFleet({
    service: state.name,
    fromVersion: version,
    fromSpec: spec,
    toVersion: version,
    toSpec: spec,
    replicas: state.replicas,
    replicaSeq: state.replicaSeq,
  }, replicaStates);
  // The others keep being watched while the lost ones are replaced.
  fleet.watchInherited(spec);
  const removeInBackground = patched(PATCHES.healLaunchesWhileRemoving);
  const removals: Promise<void>[] = [];
  let failedInARow = 0;
  fleet.onTargetFailure = (_id, message) => {
    failedInARow += 1;
    state.healing = { ...state.healing!, lastLost: message, lastLostAt: Date.now() };
  };
  const publish = (): void => {
    state.replicas = fleet.records();
    state.replicaSeq = fleet.seq;
    state.endpoint = fleet.endpoint ?? state.endpoint;
  };

  let removalFailedAt: number | undefined;
  for (;;) {
    if (removalFailedAt !== undefined) {
      const failedAt = removalFailedAt;
      removalFailedAt = undefined;
      publish();
      if (await condition(interrupt, Math.max(1, failedAt + REMOVAL_RETRY_MS - Date.now()))) continue;
    }
    fleet.settled();
    const step = planStep({
      strategy: 'rolling',
      replicas: spec.replicas,
      maxSurge: spec.rollout.max_surge,
      maxUnavailable: spec.rollout.max_unavailable,
      targetVersion: version,
      observed: fleet.observed(),
      gpu: await fleet.gpuBudget(spec),
    });
    await fleet.setTraffic(step.traffic);
    // Each removal marks its replica SHUTTING_DOWN at once, so the next plan neither removes it
    // again nor counts its slot as free; it wakes the loop when the replica is gone.
    // A removal that fails for good (a terminate the provider refuses) leaves its replica FAILED:
    // the service waits a minute before the next plan removes it again, instead of failing.
    const removal = fleet.remove(step.remove).catch((err: unknown) => {
      // (Patched: a service replaying a history from before this failed here, as it did then.)
      if (!(err instanceof ActivityFailure) || !patched(PATCHES.healingRetriesFailedRemovals)) throw err;
      removalFailedAt = Date.now();
    });
    if (removeInBackground) removals.push(removal);
    else await removal;
    publish();
    if (step.done) break;
    if (interrupt()) {
      // A rollout takes over: it starts from READY replicas only (it did not launch the rest).
      await fleet.remove(fleet.records().filter((r) => r.status !== 'READY' && r.status !== 'SHUTTING_DOWN').map((r) => r.id));
      break;
    }
    if (step.launch > 0) {
      const wait = healingBackoffMs(failedInARow);
      if (wait > 0 && (await condition(interrupt, wait))) continue;
      for (let i = 0; i < step.launch; i++) fleet.launch(version, spec);
      state.healing = { ...state.healing!, replaced: state.healing!.replaced + step.launch };
      publish();
    }
    const readyBefore = readyIds(fleet);
    await condition(() => fleet.hasChanged() || interrupt());
    // A replacement that became READY resets the backoff.
    if ([...readyIds(fleet)].some((id) => !readyBefore.has(id))) failedInARow = 0;
  }
  await Promise.all(removals);
  await fleet.stopWatching();
  publish();
}

function readyIds(fleet: ReplicaFleet): Set<string> {
  return new Set(fleet.records().flatMap((r) => (r.status === 'READY' ? [r.id] : [])));
}
