/**
 * The replica fleet of rollouts started since `batched-replica-steps`: a replaced replica costs
 * two activities and two workflow tasks (its start, its step's traffic change), where the base
 * fleet spends five of each and a watch.
 *  - A new replica's launch and wait for readiness are one activity (startReplica), and the
 *    replicas its step took out of traffic are drained and terminated inside it, alongside.
 *  - Traffic changes are never local activities: one here resolved, on replay, at another point
 *    among the replica starts completing in the same task than it had live (a thousand-replica
 *    rollout failed its replay). Before traffic-with-steps each is an activity of its own.
 *  - Removals do not hold up the loop: the planner counts leaving replicas as gone
 *    (`leavingFreesRoom`), so the next launch starts while an old replica drains.
 * Since `traffic-with-steps` (`carriesTraffic`), a step's traffic change rides on its first
 * activity (the first start, or the retirement) and is set first thing in it: a replaced replica
 * then costs one activity and one workflow task. Each change has the next sequence number of the
 * rollout (its writer: workflow id and first run), which the router keeps, so an older change
 * that arrives late (a retry, a slow attempt) changes nothing. A step with nothing to carry it
 * (a canary weight) calls the router on its own, ordered too.
 * A replica is PROVISIONING until it is READY: one activity does both steps of its start.
 * Workflow code: deterministic, no I/O.
 */
import { CancellationScope, condition, isCancellation, workflowInfo } from '@temporalio/workflow';
import { ApplicationFailure, ActivityFailure } from '@temporalio/common';
import { extraProbesAt, learnLoadTime, type LoadTimeBounds } from '../plan';
import { parseAccelerators } from '../spec/accelerators';
import type { TrafficWeight } from '../plan/types';
import type { ReadinessProbeSpec, ServiceSpec } from '../spec/types';
import type { RetireFailureDetails, RetireReplica, SetTrafficInput, SetTrafficResult } from '../activities/types';
import { failureMessage } from './failure-message';
import { DRAIN_TIMEOUT_MS, LAUNCH_CANCEL_AFTER_MS, longWaits, replicaStarts, retireReplicas } from './fleet-activities';
import { ReplicaFleet } from './replica-fleet';
import type { ReplicaStateReporter } from './replica-states';
import { watchServing } from './serving-watch';
import type { ReplicaRecord, RolloutInput } from './types';

/** A launch the step asks for. */
export interface Launch {
  version: number;
  spec: ServiceSpec;
}

export class BatchedReplicaFleet extends ReplicaFleet {
  /**
   * The first removal that failed for good (a provider refusing to terminate): the rollout
   * fails with it, as it does when an awaited removal throws (nobody awaits these).
   */
  removalFailure: unknown;
  protected override readonly watchesOnlyRouted = true;
  /**
   * One watch for the whole rollout (watchRollout) instead of one activity per READY replica:
   * it follows the router's table, so it needs one provider for both versions; a rollout that
   * moves between providers watches each new replica with an activity of its own.
   */
  readonly watchesRouted = (this.input.fromSpec ?? this.input.toSpec).resources.provider === this.input.toSpec.resources.provider;
  private watchStopped = false;
  /** The rollout's traffic changes ride on its steps' activities (PATCHES.trafficWithSteps). */
  readonly carriesTraffic: boolean;
  /** The sequence number of the last ordered traffic change (carried across runs). */
  trafficSeq: number;
  /** The writer of this rollout's ordered traffic changes: one rollout, across its runs. */
  private readonly trafficWriter: string;
  /** Per version, what its replicas' readiness said of its load time (ms after the wait began). */
  private readonly loadTimes = new Map<number, LoadTimeBounds>();

  constructor(input: RolloutInput, reporter: ReplicaStateReporter | undefined, options: { carriesTraffic: boolean }) {
    super(input, reporter);
    this.carriesTraffic = options.carriesTraffic;
    this.trafficSeq = input.carried?.trafficSeq ?? 0;
    const info = workflowInfo();
    this.trafficWriter = `${info.workflowId}/${info.firstExecutionRunId}`;
  }

  /**
   * Sets the step's traffic, then carries out its removals and launches without waiting for
   * them. Carrying traffic, the change rides on the step's first activity when it has one (the
   * split counts as set from now on: the activity sets it first thing), else it is sent on its
   * own and awaited.
   */
  async takeStep(weights: TrafficWeight[], remove: string[], launches: Launch[]): Promise<void> {
    if (!this.carriesTraffic) {
      await this.setTraffic(weights);
      void this.step(remove, launches).catch(() => undefined);
      return;
    }
    const change = this.trafficChange(weights);
    const carrier = launches.length > 0 || this.sortRemovals(remove).plain.length > 0;
    if (change && !carrier) await this.sendOrdered(change);
    void this.step(remove, launches, carrier ? change : undefined).catch(() => undefined);
  }

  /** The traffic call, ordered when carrying traffic (an awaited change, e.g. setTraffic([]) or a relabel). */
  protected override sendTraffic(split: string, input: SetTrafficInput): Promise<SetTrafficResult> {
    return super.sendTraffic(split, this.carriesTraffic ? { ...input, order: { writer: this.trafficWriter, seq: ++this.trafficSeq } } : input);
  }

  /** A new split as an ordered change, counted as the fleet's split from now on; none when it is the same. */
  private trafficChange(weights: TrafficWeight[]): CarriedTraffic | undefined {
    const change = this.trafficRequest(weights);
    if (!change) return undefined;
    this.traffic = weights;
    this.trafficKey = change.key;
    return { split: change.split, input: { ...change.input, order: { writer: this.trafficWriter, seq: ++this.trafficSeq } } };
  }

  private async sendOrdered(change: CarriedTraffic): Promise<void> {
    this.tookTraffic(await super.sendTraffic(change.split, change.input));
  }

  private tookTraffic(result: SetTrafficResult | undefined): void {
    if (result) this.endpoint = result.endpoint;
  }

  /** A step's removals: starts to cancel (still starting), and plain retirements (drain, terminate); those already leaving are neither. */
  private sortRemovals(remove: string[]): { starting: string[]; plain: ReplicaRecord[] } {
    const starting: string[] = [];
    const plain: ReplicaRecord[] = [];
    for (const id of remove) {
      const record = this.replicas.get(id);
      if (!record || record.status === 'SHUTTING_DOWN') continue;
      if (record.status === 'PROVISIONING' && !this.finished.has(id)) starting.push(id);
      else plain.push(record);
    }
    return { starting, plain };
  }

  /**
   * The rollout's one watch: the replicas it started with (while routed) and every replica the
   * router routes for the service, each with its version's probe, in one watchFleet activity
   * re-armed only when one is lost (or hourly). A lost replica is FAILED at once; one of
   * `targetVersion` is a target failure. A READY replica not routed yet (blue-green before its
   * flip) is watched from its flip on.
   */
  watchRollout(targetVersion: number): void {
    const from = this.input.fromSpec ?? this.input.toSpec;
    const to = this.input.toSpec;
    const probes: Record<string, ReadinessProbeSpec> = { [String(this.input.fromVersion)]: from.readiness_probe, [String(this.input.toVersion)]: to.readiness_probe };
    const scope = new CancellationScope();
    const done = scope
      .run(async () => {
        while (!this.watchStopped) {
          const listed = this.input.replicas.flatMap((r) => {
            const record = this.replicas.get(r.id);
            return record?.status === 'READY' && record.endpoint ? [{ replicaId: record.id, endpoint: record.endpoint }] : [];
          });
          const lost = await watchServing({ service: this.input.service, provider: to.resources.provider, probe: from.readiness_probe, replicas: listed, interrupt: () => this.watchStopped, onlyWhileRouted: true, routed: { probes } });
          for (const { replicaId, reason } of lost) {
            const record = this.replicas.get(replicaId);
            // One we are removing anyway stops because we stop it: not a failure.
            if (record?.status !== 'READY') continue;
            record.status = 'FAILED';
            record.message = reason;
            this.wake();
            if (record.version === targetVersion) this.onTargetFailure(replicaId, reason, true);
          }
        }
      })
      .catch((err: unknown) => {
        if (!isCancellation(err)) throw err;
      });
    this.inheritedWatches.push({ scope, done });
  }

  /**
   * Carries out a step's removals and launches at once, without waiting for them: the first
   * launch carries the removals of replicas that are not starting themselves; with no launch
   * they go in one retireReplicas activity. A replica still starting is cancelled, then
   * terminated. `traffic`, a change to carry, rides on the first launch or the retirement (the
   * caller made sure there is one). Resolves when every removal is done (callers that must
   * wait, await it).
   */
  step(remove: string[], launches: Launch[], traffic?: CarriedTraffic): Promise<void> {
    const { starting, plain } = this.sortRemovals(remove);
    const retiring = plain.map((r) => this.retiring(r));
    const done: Promise<void>[] = [...starting.map((id) => this.cancelStart(id))];
    let carriedDone: () => void = () => undefined;
    if (launches.length > 0 && retiring.length > 0) done.push(new Promise<void>((resolve) => (carriedDone = resolve)));
    else if (retiring.length > 0) done.push(this.retireAlone(retiring, traffic));
    const carriedBy = launches.length > 0 ? traffic : undefined;
    launches.forEach((l, i) => this.startOne(l.version, l.spec, i === 0 ? retiring : [], i === 0 ? carriedDone : () => undefined, i === 0 ? carriedBy : undefined));
    const all = Promise.all(done).then(() => undefined);
    this.removals.add(all);
    void all.catch(() => undefined).finally(() => this.removals.delete(all));
    return all;
  }

  override async stopWatching(): Promise<void> {
    this.watchStopped = true;
    await super.stopWatching();
  }

  /** Removal, batched: as `step` with no launch, awaited. */
  override async remove(ids: string[]): Promise<void> {
    await this.step(ids, []);
  }

  /** Marks a replica as leaving and says how to retire it. */
  private retiring(record: ReplicaRecord): RetireReplica {
    const drain = record.status === 'READY';
    record.status = 'SHUTTING_DOWN';
    this.report();
    return { replicaId: record.id, provider: this.providerOf(record), drain };
  }

  /** `traffic`: a carried change, set first (with nothing to retire, sent on its own). */
  private async retireAlone(retire: RetireReplica[], traffic?: CarriedTraffic): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      try {
        if (retire.length === 0) {
          if (traffic) await this.sendOrdered(traffic);
          return;
        }
        const summary = `retire ${retire.map((r) => r.replicaId).join(', ')}${traffic ? `; traffic: ${traffic.split}` : ''}`;
        const result = await retireReplicas.executeWithOptions({ summary }, [{ service: this.input.service, retire, drainTimeoutMs: DRAIN_TIMEOUT_MS, ...(traffic ? { traffic: traffic.input } : {}) }]);
        // An older worker's retireReplicas answered nothing.
        this.tookTraffic(result?.traffic);
      } catch (err) {
        // Not terminated (EC2 refusing the worker's credentials): FAILED, so that nobody waits
        // for a removal nobody is doing, and the rollout ends with why.
        for (const r of retire) this.markUnterminated(r.replicaId, err);
        this.removalFailure ??= err;
        throw err;
      }
    });
    for (const r of retire) this.forget(r.replicaId);
  }

  private markUnterminated(id: string, err: unknown): void {
    const record = this.replicas.get(id);
    if (!record) return;
    record.status = 'FAILED';
    record.message = `could not be terminated: ${failureMessage(err)}`;
    this.wake();
  }

  private forget(id: string): void {
    this.replicas.delete(id);
    this.scopes.delete(id);
    this.lifecycles.delete(id);
    this.launches.delete(id);
    this.finished.delete(id);
    this.wake();
  }

  /**
   * Cancels a replica's start (its cancellation waits for the attempt to end), then terminates
   * it. A start that ends by itself within LAUNCH_CANCEL_AFTER_MS is not cancelled: cancelling
   * an activity that is just completing only races its completion.
   */
  private async cancelStart(id: string): Promise<void> {
    const record = this.replicas.get(id);
    if (!record) return;
    record.status = 'SHUTTING_DOWN';
    this.report();
    if (!(await condition(() => this.finished.has(id), LAUNCH_CANCEL_AFTER_MS))) this.scopes.get(id)?.cancel();
    await this.lifecycles.get(id);
    await this.retireAlone([{ replicaId: id, provider: this.providerOf(record), drain: false }]);
  }

  private startOne(version: number, spec: ServiceSpec, retire: RetireReplica[], retired: () => void, traffic?: CarriedTraffic): void {
    const id = `${this.input.service}-v${version}-r${++this.seq}`;
    const gpus = parseAccelerators(spec.resources.accelerators)?.count ?? 0;
    const record: ReplicaRecord = { id, version, status: 'PROVISIONING', gpus };
    this.replicas.set(id, record);
    this.report();
    const scope = new CancellationScope();
    this.scopes.set(id, scope);
    const lifecycle = scope.run(() => this.startLifecycle(record, spec, retire, retired, traffic)).finally(() => this.finished.add(id));
    this.lifecycles.set(id, lifecycle);
  }

  /**
   * start (with the traffic change and the retirements) → READY → watch. A start that failed or
   * was cancelled (perhaps before it ran) leaves both unknown: they are done again on their own
   * (idempotent; an overtaken traffic change changes nothing). `retired` is called once the
   * retirements are settled either way.
   */
  private async startLifecycle(record: ReplicaRecord, spec: ServiceSpec, retire: RetireReplica[], retired: () => void, traffic?: CarriedTraffic): Promise<void> {
    const startedAt = Date.now();
    let retirementsDone = retire.length === 0 && !traffic;
    if (retire.length === 0) retired();
    try {
      const { startReplica } = replicaStarts(spec.readiness_probe.initial_delay_seconds);
      const retiring = retire.length ? `retiring ${retire.map((r) => r.replicaId).join(', ')}` : '';
      const carried = [retiring, traffic ? `traffic: ${traffic.split}` : ''].filter(Boolean).join('; ');
      const started = await startReplica.executeWithOptions({ summary: `start ${record.id}${carried ? ` (${carried})` : ''}` }, [
        {
          replicaId: record.id,
          service: this.input.service,
          version: record.version,
          spec,
          probe: spec.readiness_probe,
          deadline: startedAt + spec.readiness_probe.initial_delay_seconds * 1000,
          retire,
          drainTimeoutMs: DRAIN_TIMEOUT_MS,
          ...(traffic ? { traffic: traffic.input } : {}),
          ...probesWhenDue(this.loadTimes.get(record.version)),
        },
      ]);
      this.tookTraffic(started.traffic);
      if (started.readiness) this.loadTimes.set(record.version, learnLoadTime(this.loadTimes.get(record.version), started.readiness));
      if (!retirementsDone) {
        retirementsDone = true;
        for (const r of retire) this.forget(r.replicaId);
        if (retire.length > 0) retired();
      }
      if (record.status === 'SHUTTING_DOWN') return;
      record.endpoint = started.endpoint;
      record.status = 'READY';
      record.loadSeconds = Math.round((Date.now() - startedAt) / 100) / 10;
      this.wake();
      if (this.watchesRouted) return; // watchRollout watches it once it is routed
      const waits = longWaits(spec.readiness_probe.initial_delay_seconds);
      await waits.watchReplica.executeWithOptions({ summary: `watch ${record.id}` }, [{ replicaId: record.id, provider: spec.resources.provider, endpoint: started.endpoint, probe: spec.readiness_probe }]);
    } catch (err) {
      if (!retirementsDone) {
        retirementsDone = true;
        // A failure for good is kept in removalFailure. A failure the activity raised came after
        // its traffic change (set first, and retried until it is): that is not sent again.
        const trafficUnknown = traffic && !(err instanceof ActivityFailure && err.cause instanceof ApplicationFailure) ? traffic : undefined;
        if (retire.length > 0 || trafficUnknown) await CancellationScope.nonCancellable(() => this.retireAlone(retire, trafficUnknown)).catch(() => undefined);
        if (retire.length > 0) retired();
      }
      if (isCancellation(err) || record.status === 'SHUTTING_DOWN') return;
      const wasReady = record.status === 'READY';
      record.status = 'FAILED';
      record.message = failureMessage(err);
      this.wake();
      // A start that failed only because an old replica could not be retired is no fault of the new version.
      if (!fromRetiring(err)) this.onTargetFailure(record.id, record.message, wasReady);
    }
  }
}

/** A traffic change a step's activity carries: what it sets, and its split in words (for the summary). */
interface CarriedTraffic {
  split: string;
  input: SetTrafficInput;
}

/** A start's extra probes, when its version's earlier replicas said when it should be ready. */
function probesWhenDue(known: LoadTimeBounds | undefined): { extraProbesAtMs?: number[] } {
  const at = extraProbesAt(known);
  return at.length > 0 ? { extraProbesAtMs: at } : {};
}

function fromRetiring(err: unknown): boolean {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  return cause instanceof ApplicationFailure && (cause.details?.[0] as RetireFailureDetails | undefined)?.retiring === true;
}
