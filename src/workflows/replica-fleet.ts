/**
 * The rollout workflow's replicas and the activities that change them. Each launched
 * replica runs its own lifecycle (launch → wait until ready → watch) in a cancellation
 * scope of its own, so removing a replica that is still loading cancels its wait first.
 * Workflow code: deterministic, no I/O.
 */
import { CancellationScope, condition, isCancellation, patched } from '@temporalio/workflow';
import { gpuShortfall, trafficPercentByVersion } from '../plan';
import type { ObservedReplica, TrafficWeight } from '../plan/types';
import { parseAccelerators } from '../spec/accelerators';
import type { ServiceSpec } from '../spec/types';
import { failureMessage } from './failure-message';
import { PATCHES } from './patches';
import type { ReplicaStateReporter } from './replica-states';
import { watchServing } from './serving-watch';
import type { ReplicaRecord, RolloutInput } from './types';
import type { SetTrafficInput, SetTrafficResult } from '../activities/types';
import { DRAIN_TIMEOUT_MS, drainReplica, gpuCapacity, LAUNCH_CANCEL_AFTER_MS, launchReplica, longWaits, setTraffic, terminateReplica } from './fleet-activities';

export { DRAIN_TIMEOUT_MS } from './fleet-activities';

export class ReplicaFleet {
  protected readonly replicas = new Map<string, ReplicaRecord>();
  protected readonly scopes = new Map<string, CancellationScope>();
  protected readonly lifecycles = new Map<string, Promise<void>>();
  /** Settles when the replica's launch activity has finished, either way. */
  protected readonly launches = new Map<string, Promise<void>>();
  /** Replicas whose lifecycle has ended: cancelling their scope again would cancel a finished activity. */
  protected readonly finished = new Set<string>();
  protected changed = false;
  protected trafficKey = '';
  private totalGpus: number | null | undefined;
  protected readonly inheritedWatches: { scope: CancellationScope; done: Promise<void> }[] = [];
  /** Replicas whose launch activity has settled. */
  private readonly launchesDone = new Set<string>();
  /** Removals in flight (see settleRemovals). */
  protected readonly removals = new Set<Promise<void>>();
  /** Inherited replicas are watched only while routed (BatchedReplicaFleet), so that replacing one re-arms nothing. */
  protected readonly watchesOnlyRouted: boolean = false;
  seq: number;
  traffic: TrafficWeight[] = [];
  endpoint?: string;
  /** Called when a replica never became ready or died. */
  /** `wasReady`: it had been READY (it died serving), not failed to launch or to become ready. */
  onTargetFailure: (replicaId: string, message: string, wasReady: boolean) => void = () => undefined;

  /** `reporter`: the workflow's replica-state metrics (replica-states.ts), told of every change. */
  constructor(
    protected readonly input: RolloutInput,
    protected readonly reporter?: ReplicaStateReporter,
  ) {
    for (const r of input.replicas) this.replicas.set(r.id, { ...r });
    this.seq = input.replicaSeq;
    this.report();
    if (input.carried) {
      // A run continued from a long hold: the split it held is the router's now.
      this.traffic = input.carried.traffic;
      this.trafficKey = JSON.stringify(this.traffic);
      this.endpoint = input.carried.endpoint;
      return;
    }
    // Replicas that serve when the rollout starts keep serving: the first traffic call
    // re-states the same split.
    this.traffic = input.replicas
      .filter((r) => r.status === 'READY')
      .map((r) => ({ replicaId: r.id, version: r.version, weight: 1 }));
  }

  /** Nothing launching, loading, failed or being removed: every replica READY (a rollout may continue as new). */
  quiet(): boolean {
    return [...this.replicas.values()].every((r) => r.status === 'READY');
  }

  /** Replicas being launched or loading. */
  starting(): number {
    return [...this.replicas.values()].filter((r) => r.status === 'PROVISIONING' || r.status === 'STARTING').length;
  }

  wake(): void {
    this.changed = true;
    this.report();
  }

  hasChanged(): boolean {
    return this.changed;
  }

  /** Marks the current state as planned on. */
  settled(): void {
    this.changed = false;
    // Each turn of the caller's loop: a worker that replayed this workflow re-sends here.
    this.report();
  }

  /** Tells the metrics the replicas' states (no command: a sink call, sent only when changed or not sent live yet). */
  report(): void {
    this.reporter?.report([...this.replicas.values()].map((r) => ({ id: r.id, status: r.status, provider: this.providerOf(r) })));
  }

  records(): ReplicaRecord[] {
    return [...this.replicas.values()].map((r) => ({ ...r }));
  }

  versionOf(replicaId: string): number | undefined {
    return this.replicas.get(replicaId)?.version;
  }

  observed(): ObservedReplica[] {
    return [...this.replicas.values()].map(({ id, version, status }) => ({ id, version, status }));
  }

  /** GPUs free for the target spec's replicas, from the provider's total minus what our replicas hold. */
  async gpuBudget(spec: ServiceSpec): Promise<{ free: number; perReplica: number } | undefined> {
    const perReplica = parseAccelerators(spec.resources.accelerators)?.count ?? 0;
    if (perReplica === 0) return undefined;
    const total = await this.providerGpus(spec);
    if (total === null) return undefined;
    const held = [...this.replicas.values()].filter((r) => r.status !== 'TERMINATED').reduce((n, r) => n + r.gpus, 0);
    return { free: Math.max(0, total - held), perReplica };
  }

  /** Why `spec`'s replicas can never all get their GPUs on this provider, if they cannot (see gpuShortfall). */
  async gpuShortfall(spec: ServiceSpec): Promise<string | undefined> {
    const gpusPerReplica = parseAccelerators(spec.resources.accelerators)?.count ?? 0;
    if (gpusPerReplica === 0) return undefined;
    return gpuShortfall({ replicas: spec.replicas, gpusPerReplica, totalGpus: await this.providerGpus(spec) });
  }

  /** The provider's GPU total, asked once (null, "counts no GPUs", is an answer too). */
  private async providerGpus(spec: ServiceSpec): Promise<number | null> {
    if (this.totalGpus === undefined) this.totalGpus = (await gpuCapacity.executeWithOptions({ summary: `GPUs of provider ${spec.resources.provider}` }, [{ provider: spec.resources.provider }])).totalGpus;
    return this.totalGpus;
  }

  async setTraffic(weights: TrafficWeight[]): Promise<void> {
    const change = this.trafficRequest(weights);
    if (!change) return;
    const result = await this.sendTraffic(change.split, change.input);
    this.endpoint = result.endpoint;
    this.traffic = weights;
    this.trafficKey = change.key;
  }

  /** The router call for a new split, with the split in words (for its summary); none when it is the split already set. */
  protected trafficRequest(weights: TrafficWeight[]): { key: string; split: string; input: SetTrafficInput } | undefined {
    const key = JSON.stringify(weights);
    if (key === this.trafficKey) return undefined;
    const backends = weights.map((w) => ({ ...w, url: this.replicas.get(w.replicaId)?.endpoint ?? '' }));
    const split = Object.entries(trafficPercentByVersion(weights)).map(([v, pct]) => `v${v} ${pct}%`).join(', ') || 'none';
    return { key, split, input: { service: this.input.service, backends } };
  }

  /** The router call (an activity; BatchedReplicaFleet orders it when it carries traffic). */
  protected sendTraffic(split: string, input: SetTrafficInput): Promise<SetTrafficResult> {
    return setTraffic.executeWithOptions({ summary: `traffic: ${split}` }, [input]);
  }

  /** An in-place update is done: its replicas now carry the new version, in our records and in the router. */
  async relabel(from: number, to: number): Promise<void> {
    for (const r of this.replicas.values()) if (r.version === from) r.version = to;
    await this.setTraffic(this.traffic.map((w) => (w.version === from ? { ...w, version: to } : w)));
  }

  launch(version: number, spec: ServiceSpec): void {
    const id = `${this.input.service}-v${version}-r${++this.seq}`;
    const gpus = parseAccelerators(spec.resources.accelerators)?.count ?? 0;
    const record: ReplicaRecord = { id, version, status: 'PROVISIONING', gpus };
    this.replicas.set(id, record);
    this.report();
    const scope = new CancellationScope();
    this.scopes.set(id, scope);
    let launchSettled: () => void = () => undefined;
    this.launches.set(
      id,
      new Promise<void>((resolve) => {
        launchSettled = () => {
          this.launchesDone.add(id);
          resolve();
        };
      }),
    );
    const lifecycle = scope.run(() => this.lifecycle(record, spec, launchSettled)).finally(() => {
      launchSettled();
      this.finished.add(id);
    });
    this.lifecycles.set(id, lifecycle);
  }

  private async lifecycle(record: ReplicaRecord, spec: ServiceSpec, launchSettled: () => void): Promise<void> {
    const waits = longWaits(spec.readiness_probe.initial_delay_seconds);
    const provider = spec.resources.provider;
    // Workflow time (deterministic, no command in history): the load time is measured from here.
    const launchStartedAt = Date.now();
    try {
      const launched = await launchReplica
        .executeWithOptions({ summary: `launch ${record.id}` }, [{ replicaId: record.id, service: this.input.service, version: record.version, spec }])
        .finally(launchSettled);
      if (record.status === 'SHUTTING_DOWN') return;
      record.endpoint = launched.endpoint;
      record.status = 'STARTING';
      this.wake();
      const deadline = Date.now() + spec.readiness_probe.initial_delay_seconds * 1000;
      const probe = spec.readiness_probe;
      await waits.waitReplicaReady.executeWithOptions({ summary: `wait until ${record.id} is ready (GET ${probe.path})` }, [
        { replicaId: record.id, provider, endpoint: launched.endpoint, probe, deadline },
      ]);
      record.status = 'READY';
      record.loadSeconds = Math.round((Date.now() - launchStartedAt) / 100) / 10;
      this.wake();
      await waits.watchReplica.executeWithOptions({ summary: `watch ${record.id}` }, [{ replicaId: record.id, provider, endpoint: launched.endpoint, probe }]);
    } catch (err) {
      if (isCancellation(err) || record.status === 'SHUTTING_DOWN') return;
      const wasReady = record.status === 'READY';
      record.status = 'FAILED';
      record.message = failureMessage(err);
      this.wake();
      this.onTargetFailure(record.id, record.message, wasReady);
    }
  }

  /** Takes replicas out of traffic (the planner already left them out), drains, terminates. */
  async remove(ids: string[]): Promise<void> {
    const removals = ids.map((id) => this.removeOne(id));
    for (const r of removals) {
      this.removals.add(r);
      void r.catch(() => undefined).finally(() => this.removals.delete(r));
    }
    await Promise.all(removals);
  }

  /** Waits until no removal is in flight (after one failed: the others end as terminated or FAILED). */
  async settleRemovals(): Promise<void> {
    while (this.removals.size > 0) await Promise.allSettled([...this.removals]);
  }

  private async removeOne(id: string): Promise<void> {
    const record = this.replicas.get(id);
    if (!record) return;
    // A READY replica may have requests in flight even though this step took it out of traffic.
    const wasServing = record.status === 'READY';
    const launching = record.status === 'PROVISIONING';
    record.status = 'SHUTTING_DOWN';
    this.report();
    // A launch that settles within LAUNCH_CANCEL_AFTER_MS is awaited; one still going after that
    // may be retrying something that will not succeed soon (no capacity), and a rollback must not
    // wait for it: it is cancelled (its cancellation waits for a running attempt, so whatever it
    // made is terminated below). A wait for readiness or a watch is not cancelled: it ends by
    // itself (ReplicaDied) once the replica is gone. Neither cancels an activity that is just
    // completing, which would only race its completion.
    if (launching && patched(PATCHES.cancelSlowLaunches) && !(await condition(() => this.launchesDone.has(id), LAUNCH_CANCEL_AFTER_MS))) {
      this.scopes.get(id)?.cancel();
    }
    await this.launches.get(id);
    await CancellationScope.nonCancellable(async () => {
      if (wasServing) {
        await drainReplica.executeWithOptions({ summary: `drain ${id}` }, [{ service: this.input.service, replicaId: id, timeoutMs: DRAIN_TIMEOUT_MS }]);
      }
      try {
        await terminateReplica.executeWithOptions({ summary: `terminate ${id}` }, [{ replicaId: id, provider: this.providerOf(record) }]);
      } catch (err) {
        // Not terminated (EC2 refusing the worker's credentials): FAILED, not SHUTTING_DOWN, so
        // that the next plan (the next rollout, self-healing) removes it again instead of waiting
        // for a removal nobody is doing. The caller decides what the failure means.
        record.status = 'FAILED';
        record.message = `could not be terminated: ${failureMessage(err)}`;
        this.wake();
        throw err;
      }
    });
    this.replicas.delete(id);
    this.scopes.delete(id);
    this.lifecycles.delete(id);
    this.launches.delete(id);
    this.finished.delete(id);
    this.wake();
  }

  protected providerOf(record: ReplicaRecord): string {
    return this.specOf(record.version).resources.provider;
  }

  /** The spec a version's replicas run: the target's, or the serving one's. */
  protected specOf(version: number): ServiceSpec {
    return version === this.input.toVersion ? this.input.toSpec : (this.input.fromSpec ?? this.input.toSpec);
  }

  /**
   * Watches the READY replicas the fleet started with (those it did not launch: the serving
   * version's, during a rollout). One that is lost is marked FAILED at once: it leaves traffic at
   * the next step, counts against max_unavailable, and the planner removes (and, where the
   * target is its version, replaces) it.
   */
  watchInherited(spec: ServiceSpec): void {
    this.watchReady(spec, this.input.replicas.filter((r) => r.status === 'READY').map((r) => r.id), false);
  }

  /**
   * A run continued as new launched nothing itself: it watches every replica it took over, each
   * version with its own spec's probe; a lost replica of the target version is a target failure.
   */
  watchCarried(targetVersion: number): void {
    for (const version of new Set(this.input.replicas.map((r) => r.version))) {
      const ids = this.input.replicas.filter((r) => r.version === version).map((r) => r.id);
      this.watchReady(this.specOf(version), ids, version === targetVersion);
    }
  }

  private watchReady(spec: ServiceSpec, ids: string[], lossIsTargetFailure: boolean): void {
    const inherited = new Set(ids);
    const scope = new CancellationScope();
    const done = scope
      .run(async () => {
        for (;;) {
          const watched = [...inherited].flatMap((id) => {
            const r = this.replicas.get(id);
            return r?.status === 'READY' && r.endpoint ? [{ replicaId: r.id, endpoint: r.endpoint }] : [];
          });
          if (watched.length === 0) return;
          const lost = await watchServing({ service: this.input.service, provider: spec.resources.provider, probe: spec.readiness_probe, replicas: watched, interrupt: () => false, onlyWhileRouted: this.watchesOnlyRouted });
          for (const { replicaId, reason } of lost) {
            inherited.delete(replicaId);
            const record = this.replicas.get(replicaId);
            // One we are removing anyway (SHUTTING_DOWN) stops because we stop it: not a failure.
            if (record?.status !== 'READY') continue;
            record.status = 'FAILED';
            record.message = reason;
            this.wake();
            if (lossIsTargetFailure) this.onTargetFailure(replicaId, reason, true);
          }
        }
      })
      .catch((err: unknown) => {
        if (!isCancellation(err)) throw err;
      });
    this.inheritedWatches.push({ scope, done });
  }

  /** Ends the watchers of the replicas that stay (their lifecycle is over for this rollout). */
  async stopWatching(): Promise<void> {
    for (const watch of this.inheritedWatches) watch.scope.cancel();
    await Promise.all(this.inheritedWatches.map((watch) => watch.done));
    const live = [...this.replicas.keys()].filter((id) => !this.finished.has(id));
    for (const id of live) this.scopes.get(id)?.cancel();
    await Promise.all(live.map((id) => this.lifecycles.get(id)));
  }
}
