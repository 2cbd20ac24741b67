/**
 * Rollout workflow `rollout-<service>-v<version>`: moves a service from one version to the
 * next by carrying out the pure planners' steps (`src/plan`), and rolls back by itself when
 * the new version fails, its analysis fails, or the rollout runs past its timeout.
 *
 * Two planners, one loop: rolling and blue-green rollouts are replica-led (`planStep`:
 * replace replicas, traffic follows READY ones); canary steps, a manual percent and
 * constrained surge are traffic-led (`planCanaryStep`: move to a canary weight, capacity
 * first). Each turn: plan → set traffic (READY replicas only) → drain and terminate what
 * the step removes → launch what it launches → wait for a replica change, a control
 * message, the deadline, a timed pause or the next analysis. Control state lives in
 * `RolloutControl`; rolling back is the same loop with the old version as the target.
 */
import { ActivityFailure, allHandlersFinished, condition, continueAsNew, isCancellation, log, patched, setCurrentDetails, setHandler, TemporalFailure, workflowInfo } from '@temporalio/workflow';
import { BatchedReplicaFleet, type Launch } from './batched-fleet';
import { WakeTimer } from './wake-timer';
import { canarySteps, isTrafficLed, planCanaryStep, planStep, surgePercentOf, trafficPercentByVersion } from '../plan';
import type { PlanStep } from '../plan/types';
import { parseDurationMs } from '../spec/duration';
import type { ServiceSpec } from '../spec/types';
import { CanaryAnalysis } from './canary-analysis';
import { failureMessage } from './failure-message';
import {
  advanceSignal,
  controlUpdate,
  pauseSignal,
  promoteSignal,
  resumeSignal,
  rollbackSignal,
  rolloutStatusQuery,
  setCanaryPercentSignal,
} from './messages';
import { rolloutMetrics, type RolloutOutcomeLabel, type RolloutStrategyLabel } from './metrics-sink';
import { PATCHES } from './patches';
import { ReplicaFleet } from './replica-fleet';
import { ReplicaStateReporter } from './replica-states';
import { rolloutAttributes, strategyOf, upsertChanged, type RolloutIdentity } from './rollout-search-attributes';
import { RolloutControl } from './rollout-control';
import { sweepStrayReplicas } from './stray-sweep';
import type { ControlRequest, RolloutCause, RolloutInput, RolloutOutcome, RolloutPhase, RolloutResult, RolloutStatus } from './types';
import { rolloutWorkflowId } from './types';

/**
 * A run's history length at which a rollout held for long (manual mode, `{pause: {}}`, analysis
 * every minute: ~11 events a minute) continues as new, when the server has not suggested it
 * earlier. Far below Temporal's 51,200-event limit, and below its 10,240-event warning.
 */
export const ROLLOUT_HISTORY_EVENTS = 8_000;

/**
 * The same for batched rollouts (PATCHES.batchedReplicaSteps), which also continue as new in
 * the middle of a long rollout (a thousand replicas): below the 4,096 events at which Temporal
 * suggests it, so the rollout chooses the moment (a quiet one between steps) rather than the server.
 */
export const BATCHED_ROLLOUT_HISTORY_EVENTS = 2_500;

/** A batched rollout has at most this many replicas starting at once (see launch()). */
export const MAX_STARTING = 40;

export async function rolloutWorkflow(input: RolloutInput): Promise<RolloutResult> {
  // The worker's metrics hear of the start once (a run continued as new carries state and is the
  // same rollout) and of the end once, with how it ended. Sink calls add no command to the history.
  const strategy: RolloutStrategyLabel = strategyOf(input.mode, input.toSpec);
  if (!input.carried) rolloutMetrics.started(strategy);
  const startedAtMs = input.carried ? (input.carried.startedAtMs ?? workflowInfo().startTime.getTime()) : Date.now();
  const finished = (outcome: RolloutOutcomeLabel) => rolloutMetrics.finished(strategy, outcome, (Date.now() - startedAtMs) / 1000);
  // While it runs, the rollout reports its service's replica states; the service reports them again
  // once it has the result (replica-states.ts).
  const replicaStates = new ReplicaStateReporter(input.service);
  try {
    const result = await runRollout(input, startedAtMs, replicaStates);
    finished(result.outcome);
    return result;
  } catch (err) {
    // Continue-as-new is no end; a plain Error fails only the workflow task (retried), not the
    // rollout. A Temporal failure ends the workflow: cancelled from outside, or failed.
    if (isCancellation(err)) finished('cancelled');
    else if (err instanceof TemporalFailure) finished('failed');
    throw err;
  } finally {
    // Ended, failed or continued as new: this run owns no replicas any more (a new run reports its own).
    replicaStates.clear();
  }
}

async function runRollout(input: RolloutInput, startedAtMs: number, replicaStates: ReplicaStateReporter): Promise<RolloutResult> {
  const { toSpec, fromSpec } = input;
  const inPlace = input.mode === 'in_place';
  const hasPrimary = !!fromSpec && input.fromVersion > 0;
  // Batched: one activity per new replica and one workflow task per step (batched-fleet.ts), one
  // timer per deadline. (Patched: a rollout started before this replays as it ran.)
  // Since traffic-with-steps, a step's traffic change rides on its first activity (batched-fleet.ts);
  // it implies batched steps, which are then not asked (a patched() call costs history events).
  const carriesTraffic = patched(PATCHES.trafficWithSteps);
  const batched = carriesTraffic || patched(PATCHES.batchedReplicaSteps);
  // Every patch older than batched steps is in force in a batched rollout: not asked again (each
  // patched() call costs a marker and a TemporalChangeVersion upsert, two history events).
  const since = (patch: string): boolean => batched || patched(patch);
  const fleet = batched ? new BatchedReplicaFleet(input, replicaStates, { carriesTraffic }) : new ReplicaFleet(input, replicaStates);
  const wakeTimer = new WakeTimer();
  const control = new RolloutControl({
    steps: canarySteps(toSpec),
    strategy: toSpec.rollout.strategy,
    trafficLed: !inPlace && hasPrimary && (isTrafficLed(toSpec) || input.canaryPercent !== undefined),
    inPlace,
    hasPrimary: hasPrimary && !inPlace,
    timeoutMs: parseDurationMs(toSpec.rollout.timeout),
    rollbackMinMs: ((fromSpec ?? toSpec).readiness_probe.initial_delay_seconds + 60) * 1000,
    now: Date.now(),
    manualPercent: inPlace ? undefined : input.canaryPercent,
  });
  const { carried } = input;
  if (carried) control.restore(carried.control);
  // The search attributes the namespace has (the service asked the worker); a rollout started
  // before they existed has none and sets none. (Patched: it replays as it ran.)
  const registered = input.searchAttributes?.length && since(PATCHES.rolloutSearchAttributes) ? input.searchAttributes : [];
  const identity: RolloutIdentity = { service: input.service, version: input.toVersion, strategy: strategyOf(input.mode, toSpec) };
  const analysis = toSpec.rollout.analysis && hasPrimary && !inPlace ? new CanaryAnalysis(input.service, toSpec.rollout.analysis, carried?.analysis) : undefined;
  let note = carried?.note ?? 'starting';
  let canaryPercent = carried?.canaryPercent ?? 0;
  let reachedWeight = carried?.reachedWeight ?? false;
  const run = carried?.run ?? 1;

  const rollBack = (why: string, cause: RolloutCause): void => {
    if (control.phase !== 'rolling_out') return;
    log.warn('rolling back', { why });
    control.rollBack(why, Date.now(), cause);
    fleet.wake();
  };
  // A new replica that fails rolls the rollout back (an in-place update's new replicas carry the serving label).
  fleet.onTargetFailure = (replicaId, message, wasReady) => {
    if (fleet.versionOf(replicaId) === (inPlace ? input.fromVersion : input.toVersion)) {
      rollBack(`replica ${replicaId} failed: ${message}`, { kind: wasReady ? 'replica_lost' : 'readiness', replicaId });
    }
  };

  const phaseNow = (): RolloutPhase => (control.phase !== 'rolling_out' ? control.phase : control.paused ? 'paused' : control.manual ? 'manual' : 'rolling_out');
  const status = (): RolloutStatus => {
    const now = Date.now();
    const phase = phaseNow();
    return {
      workflowId: rolloutWorkflowId(input.service, input.toVersion),
      service: input.service,
      fromVersion: input.fromVersion,
      toVersion: input.toVersion,
      phase,
      reason: control.reason,
      ...(control.cause ? { cause: control.cause } : {}),
      note,
      replicas: fleet.records(),
      traffic: trafficPercentByVersion(fleet.traffic),
      deadline: control.deadlineAt(now),
      endpoint: fleet.endpoint,
      mode: inPlace ? 'in_place' : control.manual ? 'manual' : control.trafficLed ? 'steps' : 'replicas',
      canaryPercent,
      targetPercent: control.trafficLed ? control.targetWeight() : undefined,
      steps: control.trafficLed ? control.steps : undefined,
      stepIndex: control.trafficLed ? control.stepIndex : undefined,
      stepPauseUntil: control.pauseStepEndsAt(now),
      analysis: analysis?.status(),
      refused: [...control.refused],
      run,
    };
  };

  const onSignal = (req: ControlRequest) => {
    const refusal = control.signal(req, Date.now());
    if (refusal) log.warn(`ignored ${req.action} signal: ${refusal}`);
    else note = control.describeAccepted(req);
    fleet.wake();
  };
  setHandler(pauseSignal, () => onSignal({ action: 'pause' }));
  setHandler(resumeSignal, () => onSignal({ action: 'resume' }));
  setHandler(advanceSignal, () => onSignal({ action: 'advance' }));
  setHandler(promoteSignal, () => onSignal({ action: 'promote' }));
  setHandler(rollbackSignal, (arg) => onSignal({ action: 'rollback', reason: typeof arg?.reason === 'string' ? arg.reason : undefined }));
  setHandler(setCanaryPercentSignal, (arg) => {
    const percent = percentOf(arg);
    if (Number.isNaN(percent)) control.refuse('setCanaryPercent', `needs a percent from 0 to 100, got ${JSON.stringify(arg ?? null)}`);
    else onSignal({ action: 'setCanaryPercent', percent });
  });
  setHandler(
    controlUpdate,
    (req) => {
      control.apply(req, Date.now());
      // The answer is the state the request leads to: its phase, and what happens next.
      note = control.describeAccepted(req);
      fleet.wake();
      return status();
    },
    {
      validator: (req) => {
        const refusal = control.validate(req);
        if (refusal) throw new Error(refusal);
      },
    },
  );
  setHandler(rolloutStatusQuery, status);
  /** The phase and canary percent (and at the end the outcome) as search attributes, when they changed. */
  const tag = (outcome?: RolloutOutcome): void => {
    if (registered.length > 0) upsertChanged(rolloutAttributes(identity, { phase: phaseNow(), canaryPercent, outcome }), registered);
  };

  // The serving replicas are watched throughout: one that dies mid-rollout is noticed, leaves
  // traffic and counts against max_unavailable. (Patched: rollouts started before it had no watch.)
  // A continued run watches every replica it took over; it launched none itself.
  // Batched, one provider: one watch for the whole rollout, following the router (batched-fleet.ts).
  if (fleet instanceof BatchedReplicaFleet && fleet.watchesRouted) fleet.watchRollout(inPlace ? input.fromVersion : input.toVersion);
  else if (carried) fleet.watchCarried(inPlace ? input.fromVersion : input.toVersion);
  else if (input.replicas.length > 0 && since(PATCHES.watchServingReplicas)) fleet.watchInherited(fromSpec ?? toSpec);

  // GPUs the provider can never give (L4:1 on a machine with none): fail now, not at the timeout.
  const shortfall = !carried && since(PATCHES.gpuShortfallFailsFast) ? await fleet.gpuShortfall(toSpec) : undefined;
  if (shortfall) rollBack(`not enough GPUs: ${shortfall}`, { kind: 'gpu_shortfall' });

  try {
    for (;;) {
      // A batched removal nobody awaits that failed for good fails the rollout, as an awaited one does.
      if (fleet instanceof BatchedReplicaFleet && fleet.removalFailure) throw fleet.removalFailure;
      const now = Date.now();
      if (control.timedOut(now)) {
        if (control.phase === 'rolling_out') rollBack(`timed out after ${toSpec.rollout.timeout}`, { kind: 'timeout' });
        else {
          control.finish('failed', `${control.reason ?? 'rollback'}; the rollback did not complete in time`);
          // What is still loading serves nothing: remove it rather than leave it behind. Traffic
          // stays on the READY replicas; the service's next deploy replaces every replica.
          note = 'removing the replicas that are not ready';
          await fleet.remove(fleet.records().filter((r) => r.status !== 'READY').map((r) => r.id));
          break;
        }
      }
      control.takeChanged();
      fleet.settled();

      if (analysis && canaryPercent > 0 && control.phase === 'rolling_out' && analysis.due(now)) {
        tag();
        const verdict = await analysis.check(input.toVersion, input.fromVersion);
        if (verdict.rollback) rollBack(`analysis failed: ${verdict.reasons.join('; ')}`, { kind: 'analysis' });
        continue;
      }

      if (!control.holdsTraffic()) {
        if (!hasPrimary && control.phase === 'rolling_back') {
          // A first deploy has nothing to roll back to: remove everything it started.
          note = 'removing every replica of the failed first deploy';
          await fleet.setTraffic([]);
          await fleet.remove(fleet.records().map((r) => r.id));
          control.finish('failed');
          break;
        }
        const launches: Launch[] = [];
        const step = control.trafficLed ? await trafficLedStep(launches) : await replicaLedStep(launches);
        note = step.note;
        setCurrentDetails(`**${status().phase}** (v${input.fromVersion} → v${input.toVersion}): ${note}`);
        // Before each wait (an activity, a replica change, a control message): a phase or percent
        // that holds for a while shows; one that changes and changes back within a task does not.
        tag();
        // Batched: the traffic change, removals and launches go together and the loop does not
        // wait for the removals and launches (nor, carried by one of them, for the change).
        if (fleet instanceof BatchedReplicaFleet) await fleet.takeStep(step.traffic, step.remove, launches);
        else await fleet.setTraffic(step.traffic);
        canaryPercent = trafficPercentByVersion(step.traffic)[String(input.toVersion)] ?? 0;
        if (inPlace) canaryPercent = 0;
        if (!(fleet instanceof BatchedReplicaFleet)) await fleet.remove(step.remove);
        if (step.done) {
          if (inPlace && control.phase === 'rolling_out') {
            await fleet.relabel(input.fromVersion, input.toVersion);
            note = `done: ${toSpec.replicas} v${input.toVersion} replica(s) ready, none restarted`;
          }
          control.finish(control.phase === 'rolling_out' ? 'succeeded' : 'rolled_back');
          break;
        }
        if (control.progress(reachedWeight, analysisAllowsProgress(), Date.now())) {
          analysis?.stepChanged();
          continue;
        }
        if (step.remove.length > 0 && !batched) continue; // capacity was freed: plan again at once
      }

      // A long hold: carry on in a fresh run before the history nears its limits. Only when all is
      // still (every replica READY, nothing launching or being removed), so no activity is cut off
      // half-way. (Patched: a rollout started before this replays as it ran.)
      if (control.phase === 'rolling_out' && historyIsLong(batched) && fleet.quiet() && since(PATCHES.rolloutContinuesAsNew)) {
        // The watches are not cancelled first: the run's end drops them (a running one is told so
        // at its next heartbeat), and the next run starts its own.
        await condition(allHandlersFinished);
        return continueAsNew<typeof rolloutWorkflow>({
          ...input,
          replicas: fleet.records(),
          replicaSeq: fleet.seq,
          carried: {
            control: control.snapshot(),
            analysis: analysis?.snapshot(),
            note,
            canaryPercent,
            reachedWeight,
            startedAtMs,
            traffic: fleet.traffic,
            endpoint: fleet.endpoint,
            run: run + 1,
            ...(fleet instanceof BatchedReplicaFleet && fleet.carriesTraffic ? { trafficSeq: fleet.trafficSeq } : {}),
          },
        });
      }

      tag();
      const wakeAt = [control.deadlineAt(Date.now()), control.pauseStepEndsAt(Date.now()), analysis && canaryPercent > 0 ? analysis.nextAt() : undefined]
        .filter((t): t is number => typeof t === 'number')
        .reduce((a, b) => Math.min(a, b), Infinity);
      const woke = () => fleet.hasChanged() || control.hasChanged();
      // Batched: one timer per wake-up time, kept across turns (not one started and cancelled each turn).
      if (batched) await wakeTimer.until(wakeAt, woke);
      else if (wakeAt === Infinity) await condition(woke);
      else await condition(woke, Math.max(1, wakeAt - Date.now()));
    }
  } catch (err) {
    // An activity that failed for good (a provider refusing its credentials on terminate, a router
    // gone for minutes) ends the rollout as failed, saying why, instead of failing the workflow:
    // the service records the outcome and `deploy --wait` exits 1 with the reason. (Patched: a
    // rollout started before this replays as it ran.)
    if (!(err instanceof ActivityFailure) || !since(PATCHES.activityFailureEndsRollout)) throw err;
    log.error('an activity failed for good: the rollout fails', { error: failureMessage(err) });
    await fleet.settleRemovals();
    const why = failureMessage(err);
    control.finish('failed', control.reason?.includes(why) ? control.reason : `${control.reason ? `${control.reason}; then ` : ''}${why}`, { kind: 'activity_failed' });
  }
  const succeeded = control.phase === 'succeeded';
  const outcome: RolloutOutcome = succeeded ? 'succeeded' : control.phase === 'rolled_back' ? 'rolled_back' : 'failed';
  tag(outcome);

  await fleet.stopWatching();
  // The provider may hold replicas of the losing version that the rollout does not remember (a
  // launch whose result a crash lost, a duplicate): found by the provider's listing, terminated.
  // (Patched: a rollout started before this replays as it ran.)
  if (since(PATCHES.sweepStrayReplicas)) {
    const leaving = control.phase === 'succeeded' ? input.fromVersion : input.toVersion;
    const owned = new Set(fleet.records().map((r) => r.id));
    if (leaving > 0) {
      try {
        const providers = [...new Set([toSpec.resources.provider, (fromSpec ?? toSpec).resources.provider])];
        const swept = await sweepStrayReplicas({ service: input.service, keepReplicaIds: [...owned], versions: [leaving], providers }, { summary: `v${leaving} of ${input.service}` });
        if (swept.length) log.warn('terminated stray replicas', { version: leaving, replicas: swept.map((s) => `${s.replicaId} (${s.externalId})`) });
      } catch (err) {
        // The outcome stands; `rollout gc` finds what is left.
        log.error('could not sweep stray replicas', { version: leaving, error: String(err) });
      }
    }
  }
  note = control.phase === 'succeeded' ? `v${input.toVersion} serves all traffic` : (control.reason ?? control.phase);
  setCurrentDetails(`**${control.phase}**: ${note}`);
  return {
    outcome,
    reason: control.reason,
    cause: succeeded ? { kind: 'promoted' } : (control.cause ?? { kind: 'activity_failed' }),
    servingVersion: succeeded ? input.toVersion : input.fromVersion,
    replicas: fleet.records(),
    replicaSeq: fleet.seq,
    endpoint: fleet.endpoint,
  };

  /**
   * Analysis holds a step until a check passed in it. A step before the canary has any traffic
   * (a timed pause first) has nothing to check: it waited for a check that never came, until the
   * timeout rolled it back. (Patched: a rollout started before this replays as it ran.)
   */
  function analysisAllowsProgress(): boolean {
    if (!analysis) return true;
    if (analysis.allowsProgress()) return true;
    return canaryPercent === 0 && since(PATCHES.noAnalysisBeforeTraffic);
  }

  /** The launches a step asks for: into `launches` when batched (the fleet starts them with the step's removals), at once otherwise. */
  function launch(launches: Launch[], version: number, spec: ServiceSpec): void {
    if (!batched) fleet.launch(version, spec);
    // At most MAX_STARTING starting at once: the rest as starts end (each wakes the loop). The
    // server fails a workflow task during which more than 100 events arrived (a burst of starts
    // ending: two events each), and a thousand-replica rollout needs quiet moments to continue as new.
    else if (fleet.starting() + launches.length < MAX_STARTING) launches.push({ version, spec });
  }

  /**
   * Batched and the history long: no new launches, so that the fleet becomes quiet and the
   * rollout continues as new (a rollback still launches: it must not wait).
   */
  function holdLaunchesForNewRun(): boolean {
    return batched && control.phase === 'rolling_out' && historyIsLong(true);
  }

  async function replicaLedStep(launches: Launch[]): Promise<PlanStep> {
    const rollingBack = control.phase === 'rolling_back';
    // Rolling back an in-place update scales back to the old count; otherwise the old version is the target.
    const target: { version: number; spec: ServiceSpec } = inPlace
      ? { version: input.fromVersion, spec: rollingBack && fromSpec ? { ...toSpec, replicas: fromSpec.replicas } : toSpec }
      : rollingBack && fromSpec
        ? { version: input.fromVersion, spec: fromSpec }
        : { version: input.toVersion, spec: toSpec };
    const step = planStep({
      strategy: inPlace ? 'rolling' : target.spec.rollout.strategy,
      replicas: target.spec.replicas,
      // Rolling back brings every old replica back at once (surge = replicas).
      maxSurge: rollingBack && !inPlace ? target.spec.replicas : target.spec.rollout.max_surge,
      maxUnavailable: target.spec.rollout.max_unavailable,
      targetVersion: target.version,
      observed: fleet.observed(),
      gpu: await fleet.gpuBudget(target.spec),
      leavingFreesRoom: batched,
    });
    if (!holdLaunchesForNewRun()) for (let i = 0; i < step.launch; i++) launch(launches, target.version, target.spec);
    return step;
  }

  async function trafficLedStep(launches: Launch[]): Promise<PlanStep> {
    const primarySpec = fromSpec ?? toSpec;
    const canaryGpu = await fleet.gpuBudget(toSpec);
    const primaryGpu = await fleet.gpuBudget(primarySpec);
    const budget = canaryGpu ?? primaryGpu;
    const step = planCanaryStep({
      canary: { version: input.toVersion, replicas: toSpec.replicas },
      primary: { version: input.fromVersion, replicas: primarySpec.replicas },
      weight: control.targetWeight(),
      rollingBack: control.phase === 'rolling_back',
      surgePercent: surgePercentOf(toSpec),
      observed: fleet.observed(),
      gpu: budget ? { free: budget.free, perCanaryReplica: canaryGpu?.perReplica ?? 0, perPrimaryReplica: primaryGpu?.perReplica ?? 0 } : undefined,
    });
    if (!holdLaunchesForNewRun()) {
      for (let i = 0; i < step.launchPrimary; i++) launch(launches, input.fromVersion, primarySpec);
      for (let i = 0; i < step.launch; i++) launch(launches, input.toVersion, toSpec);
    }
    reachedWeight = step.reached;
    return step;
  }
}

/** A setCanaryPercent signal's argument: `30`, `"30"` or `{percent: 30}`; anything else is NaN (refused). */
function percentOf(arg: unknown): number {
  const raw = typeof arg === 'object' && arg !== null && 'percent' in arg ? (arg as { percent: unknown }).percent : arg;
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(raw)) return Number(raw);
  return Number.NaN;
}

function historyIsLong(batched: boolean): boolean {
  const info = workflowInfo();
  return info.continueAsNewSuggested || info.historyLength >= (batched ? BATCHED_ROLLOUT_HISTORY_EVENTS : ROLLOUT_HISTORY_EVENTS);
}
