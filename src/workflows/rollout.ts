/**
 * Rollout workflow `rollout-<service>-v<version>`: moves a service from one version to the
 * next by carrying out the pure planner's steps (`src/plan`), and rolls back by itself when
 * the new version fails or the rollout runs past its timeout.
 *
 * The loop: ask the planner for the next step → set traffic (READY replicas only) → drain
 * and terminate what the step removes → launch what it launches → wait until a replica
 * changes state, a signal arrives or the deadline passes. Rolling back is the same loop
 * with the old version as the target, so old replicas come back (and become READY)
 * before the new ones leave.
 */
import { condition, log, setCurrentDetails, setHandler } from '@temporalio/workflow';
import { planStep, trafficPercentByVersion } from '../plan';
import { parseDurationMs } from '../spec/duration';
import type { ServiceSpec } from '../spec/types';
import { pauseSignal, resumeSignal, rollbackSignal, rolloutStatusQuery } from './messages';
import { ReplicaFleet } from './replica-fleet';
import type { RolloutInput, RolloutPhase, RolloutResult, RolloutStatus } from './types';
import { rolloutWorkflowId } from './types';

interface Target {
  version: number;
  spec: ServiceSpec;
}

export async function rolloutWorkflow(input: RolloutInput): Promise<RolloutResult> {
  const timeoutMs = parseDurationMs(input.toSpec.rollout.timeout);
  const fleet = new ReplicaFleet(input);
  let phase: RolloutPhase = 'rolling_out';
  let paused = false;
  let pausedAt = 0;
  let reason: string | undefined;
  let note = 'starting';
  let deadline = Date.now() + timeoutMs;

  const rollBack = (why: string): void => {
    if (phase !== 'rolling_out') return;
    log.warn('rolling back', { why });
    phase = 'rolling_back';
    paused = false;
    reason = why;
    deadline = Date.now() + timeoutMs;
    fleet.wake();
  };
  fleet.onTargetFailure = (replicaId, message) => {
    if (fleet.versionOf(replicaId) === input.toVersion) rollBack(`replica ${replicaId} failed: ${message}`);
  };

  setHandler(pauseSignal, () => {
    if (phase !== 'rolling_out' || paused) return;
    paused = true;
    pausedAt = Date.now();
    fleet.wake();
  });
  setHandler(resumeSignal, () => {
    if (!paused) return;
    paused = false;
    deadline += Date.now() - pausedAt; // the timeout does not count paused time (as Argo Rollouts)
    fleet.wake();
  });
  setHandler(rollbackSignal, (arg) => rollBack(arg?.reason ? `manual rollback: ${arg.reason}` : 'manual rollback'));
  setHandler(
    rolloutStatusQuery,
    (): RolloutStatus => ({
      workflowId: rolloutWorkflowId(input.service, input.toVersion),
      service: input.service,
      fromVersion: input.fromVersion,
      toVersion: input.toVersion,
      phase: paused ? 'paused' : phase,
      reason,
      note,
      replicas: fleet.records(),
      traffic: trafficPercentByVersion(fleet.traffic),
      deadline: paused ? deadline + (Date.now() - pausedAt) : deadline,
      endpoint: fleet.endpoint,
    }),
  );

  const targetNow = (): Target | undefined =>
    phase === 'rolling_out'
      ? { version: input.toVersion, spec: input.toSpec }
      : input.fromSpec && input.fromVersion > 0
        ? { version: input.fromVersion, spec: input.fromSpec }
        : undefined;

  for (;;) {
    if (!paused && Date.now() >= deadline) {
      if (phase === 'rolling_out') rollBack(`timed out after ${input.toSpec.rollout.timeout}`);
      else {
        phase = 'failed';
        reason = `${reason ?? 'rollback'}; the rollback did not complete within ${input.toSpec.rollout.timeout}`;
        break;
      }
    }
    fleet.settled();
    if (!paused) {
      const target = targetNow();
      if (!target) {
        // A first deploy has nothing to roll back to: remove everything it started.
        note = 'removing every replica of the failed first deploy';
        await fleet.setTraffic([]);
        await fleet.remove(fleet.records().map((r) => r.id));
        phase = 'failed';
        break;
      }
      const step = planStep({
        strategy: target.spec.rollout.strategy,
        replicas: target.spec.replicas,
        // Rolling back brings every old replica back at once (surge = replicas).
        maxSurge: target.version === input.toVersion ? target.spec.rollout.max_surge : target.spec.replicas,
        maxUnavailable: target.spec.rollout.max_unavailable,
        targetVersion: target.version,
        observed: fleet.observed(),
        gpu: await fleet.gpuBudget(target.spec),
      });
      note = step.note;
      setCurrentDetails(`**${phase}** (v${input.fromVersion} → v${input.toVersion}): ${note}`);
      await fleet.setTraffic(step.traffic);
      await fleet.remove(step.remove);
      for (let i = 0; i < step.launch; i++) fleet.launch(target.version, target.spec);
      if (step.done) {
        phase = phase === 'rolling_out' ? 'succeeded' : 'rolled_back';
        break;
      }
      if (step.remove.length > 0) continue; // capacity was freed: plan again at once
    }
    if (paused) await condition(() => fleet.hasChanged());
    else await condition(() => fleet.hasChanged(), Math.max(1, deadline - Date.now()));
  }

  await fleet.stopWatching();
  note = phase === 'succeeded' ? `v${input.toVersion} serves all traffic` : (reason ?? phase);
  setCurrentDetails(`**${phase}**: ${note}`);
  return {
    outcome: phase === 'succeeded' ? 'succeeded' : phase === 'rolled_back' ? 'rolled_back' : 'failed',
    reason,
    servingVersion: phase === 'succeeded' ? input.toVersion : input.fromVersion,
    replicas: fleet.records(),
    replicaSeq: fleet.seq,
    endpoint: fleet.endpoint,
  };
}

