/**
 * In-memory activities for workflow tests that are about orchestration: replicas are records,
 * readiness is scripted per version. The Temporal server and client stay real.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { type Client, isGrpcServiceError } from '@temporalio/client';
import type { createActivities } from '../../src/activities';
import { createControlForwarding } from '../../src/activities/control-forwarding';
import { createSearchAttributeActivities } from '../../src/activities/search-attributes';
import { createReplicaSteps } from '../../src/activities/start-replica';
import type { StatsSnapshot } from '../../src/plan/analysis';
import type { TrafficOrder } from '../../src/router/types';
import type {
  DrainReplicaInput,
  LaunchReplicaInput,
  ReadTrafficStatsInput,
  RetireReplicasInput,
  SetTrafficInput,
  StartReplicaInput,
  TerminateReplicaInput,
  WaitReplicaReadyInput,
  WatchReplicaInput,
} from '../../src/activities/types';
import type { FleetWatchInput } from '../../src/activities/watch';
import { TIME_SKIPPING_SEARCH_ATTRIBUTES } from './temporal-env';
import type { FindStrayReplicasInput, TerminateStrayReplicasInput } from '../../src/activities/stray-replicas';

type Activities = ReturnType<typeof createActivities>;

/** gRPC status 12. */
const GRPC_UNIMPLEMENTED = 12;

/** How replicas of a version behave: ready after `readyAfterMs` (real time), never ready, or failing. */
export type Readiness =
  | { kind: 'ready'; afterMs?: number }
  | { kind: 'never' }
  | { kind: 'fail'; message: string }
  /** Becomes ready, then its process dies (the watch reports it). */
  | { kind: 'dies-after-ready'; message: string; afterMs?: number };

export interface FakeWorld {
  activities: Activities;
  /** Every setTraffic call, in order. */
  trafficCalls: SetTrafficInput['backends'][];
  launched: string[];
  terminated: string[];
  drained: string[];
  /** Replicas drained while the router's table (the last traffic call) still routed them: a defect. */
  drainedWhileRouted: string[];
  /** Replica ids currently "running". */
  running: Set<string>;
  /** The most replicas running at once, per service (capacity bounds). */
  peakRunning: Map<string, number>;
  readiness: Map<number, Readiness>;
  /**
   * What readTrafficStats answers per service: a snapshot (every read), or a script of
   * snapshots, one per read, the last one repeating. No entry: {} (no traffic yet).
   */
  stats: Map<string, StatsSnapshot | StatsSnapshot[]>;
  /** Every readTrafficStats call's service, in order. */
  statsReads: string[];
  /** Versions whose launches fail with this (retryable) provider error, every attempt. */
  launchFailures: Map<number, { type: string; message: string }>;
  /** When set, terminating fails with it, for good (a provider that refuses the worker's credentials). */
  terminateFailure?: { type: string; message: string };
  /** When set, listing strays fails with it (a provider whose credentials are refused). */
  strayListingFailure?: { type: string; message: string };
  /** What gpuCapacity answers: null (default) = the provider counts no GPUs. */
  totalGpus: number | null;
  /**
   * What the fake worker says the namespace has of the rollout search attributes; undefined:
   * what the server says (see registeredSearchAttributes below).
   */
  searchAttributes?: string[];
  /** Replicas killed by the test (id → why), reported lost by the next watchFleet that covers them. */
  killed: Map<string, string>;
  /** Every watchFleet call's replica ids, in order. */
  fleetWatches: string[][];
  /** Kills a running replica: the next fleet watch over it reports it lost (SIGKILL of a replica process). */
  kill(replicaId: string, reason?: string): void;
  /**
   * Holds every readiness wait of `version` until the returned function is called, so a test
   * can act while a rollout is certainly mid-way (a fixed load time would race a busy machine).
   */
  hold(version: number): () => void;
  /**
   * Holds the termination of `replicaId` until the returned function is called (a hung replica
   * that ignores SIGTERM and is killed only at the end of its grace period).
   */
  holdTermination(replicaId: string): () => void;
}

/** Resolves when `released` does (or rejects when the activity is cancelled), heartbeating meanwhile. */
function heldUntil(released: Promise<void>): Promise<void> {
  const ctx = Context.current();
  return new Promise((resolve, reject) => {
    // The readiness wait has a heartbeat timeout: a held replica is still "loading".
    const beat = setInterval(() => ctx.heartbeat(), 500);
    const done = (fn: () => void) => () => {
      clearInterval(beat);
      fn();
    };
    void released.then(done(resolve));
    ctx.cancellationSignal.addEventListener('abort', done(() => reject(ctx.cancellationSignal.reason)));
  });
}

function sleepUnlessCancelled(ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const signal = Context.current().cancellationSignal;
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });
}

/**
 * "Still loading, ask again in 10 minutes": the time-skipping server only skips time while no
 * activity runs, so a replica that never becomes ready is modelled by retries far apart.
 */
function stillLoading(): never {
  throw ApplicationFailure.create({ type: 'StillLoading', message: 'still loading', nextRetryDelay: '10 minutes' });
}

/**
 * "Healthy, look again in an hour": a watch of a healthy replica. The real watches run until
 * something is lost or they are cancelled; a fake cannot block like that (the time-skipping
 * server does not skip while an activity runs), nor end at once (a watch that *completes* just
 * as the workflow cancels it trips the test server, which the real server tolerates). A
 * retryable failure far apart keeps the watch pending and cancellable, and time skippable.
 * `env.sleep('1 hour')` makes it look again.
 */
function stillHealthy(): never {
  throw ApplicationFailure.create({ type: 'StillHealthy', message: 'still healthy', nextRetryDelay: '1 hour' });
}

/** `client`: the real Temporal client the service workflow's control update is forwarded with. */
export function fakeWorld(readiness: Record<number, Readiness> = {}, client?: Client): FakeWorld {
  const world: FakeWorld = {
    trafficCalls: [],
    launched: [],
    terminated: [],
    drained: [],
    drainedWhileRouted: [],
    running: new Set(),
    peakRunning: new Map(),
    readiness: new Map(Object.entries(readiness).map(([v, r]) => [Number(v), r])),
    stats: new Map(),
    statsReads: [],
    totalGpus: null,
    launchFailures: new Map(),
    killed: new Map(),
    fleetWatches: [],
    kill(replicaId, reason = 'exit code 137') {
      world.running.delete(replicaId);
      world.killed.set(replicaId, reason);
    },
    activities: {} as Activities,
    hold(version) {
      let release!: () => void;
      holds.set(version, new Promise<void>((r) => (release = r)));
      return () => {
        holds.delete(version);
        release();
      };
    },
    holdTermination(replicaId) {
      let release!: () => void;
      terminationHolds.set(replicaId, new Promise<void>((r) => (release = r)));
      return () => {
        terminationHolds.delete(replicaId);
        release();
      };
    },
  };
  const terminationHolds = new Map<string, Promise<void>>();
  const holds = new Map<number, Promise<void>>();
  /** Per service, the last ordered traffic change taken (the router's `order`). */
  const lastOrders = new Map<string, TrafficOrder>();
  const listSearchAttributes = createSearchAttributeActivities(client);
  const versionOf = (replicaId: string): number => Number(/-v(\d+)-r\d+$/.exec(replicaId)?.[1]);
  world.activities = {
    ...createControlForwarding(client),
    // Which rollout search attributes the namespace has: as set by the test, else the real check
    // against the test's real server; the time-skipping server cannot list them (UNIMPLEMENTED),
    // and has those createTimeSkippingEnv registered.
    async registeredSearchAttributes() {
      if (world.searchAttributes) return world.searchAttributes;
      try {
        return await listSearchAttributes.registeredSearchAttributes();
      } catch (err) {
        if (isGrpcServiceError(err) && err.code === GRPC_UNIMPLEMENTED) return [...TIME_SKIPPING_SEARCH_ATTRIBUTES];
        throw err;
      }
    },
    // The "provider" lists what runs: a replica id is `<service>-v<version>-r<n>`.
    async findStrayReplicas(input: FindStrayReplicasInput) {
      const failure = world.strayListingFailure;
      if (failure) throw ApplicationFailure.create({ type: failure.type, message: failure.message, nonRetryable: true });
      const keep = new Set(input.keepReplicaIds);
      return [...world.running]
        .filter((id) => id.startsWith(`${input.service}-v`) && !keep.has(id) && (!input.versions || input.versions.includes(versionOf(id))))
        .sort()
        .map((replicaId) => ({ provider: 'local', replicaId, version: versionOf(replicaId), state: 'running', externalId: replicaId }));
    },
    async terminateStrayReplicas(input: TerminateStrayReplicasInput) {
      for (const { replicaId } of input.replicas) {
        if (world.running.delete(replicaId)) world.terminated.push(replicaId);
      }
      return { terminated: input.replicas.map((r) => r.replicaId) };
    },
    async launchReplica(input: LaunchReplicaInput) {
      const failure = world.launchFailures.get(input.version);
      // Retried by the workflow's policy (1 minute apart at most: skipped time).
      if (failure) throw ApplicationFailure.create({ type: failure.type, message: failure.message, nextRetryDelay: '1 minute' });
      if (!world.running.has(input.replicaId)) world.launched.push(input.replicaId);
      world.running.add(input.replicaId);
      const ofService = [...world.running].filter((id) => id.startsWith(`${input.service}-v`)).length;
      world.peakRunning.set(input.service, Math.max(world.peakRunning.get(input.service) ?? 0, ofService));
      return { replicaId: input.replicaId, endpoint: `http://fake/${input.replicaId}`, gpuIds: [] };
    },
    async waitReplicaReady(input: WaitReplicaReadyInput) {
      if (!world.running.has(input.replicaId)) {
        throw ApplicationFailure.create({ type: 'ReplicaDied', message: `${input.replicaId} is gone`, nonRetryable: true });
      }
      const held = holds.get(versionOf(input.replicaId));
      if (held) await heldUntil(held);
      const behaviour = world.readiness.get(versionOf(input.replicaId)) ?? { kind: 'ready' };
      if (behaviour.kind === 'never') stillLoading();
      if (behaviour.kind === 'fail') {
        throw ApplicationFailure.create({ type: 'ReplicaNotReady', message: behaviour.message, nonRetryable: true });
      }
      if (behaviour.kind === 'ready' || behaviour.kind === 'dies-after-ready') await sleepUnlessCancelled(behaviour.afterMs ?? 10);
      return { readyAtMs: behaviour.kind === 'ready' || behaviour.kind === 'dies-after-ready' ? (behaviour.afterMs ?? 10) : 0 };
    },
    // The real composition (launch, wait, and the step's retirements alongside) over these fakes.
    startReplica: (input: StartReplicaInput) => createReplicaSteps(world.activities).startReplica(input),
    retireReplicas: (input: RetireReplicasInput) => createReplicaSteps(world.activities).retireReplicas(input),
    async watchReplica(input: WatchReplicaInput) {
      const behaviour = world.readiness.get(versionOf(input.replicaId));
      if (behaviour?.kind === 'dies-after-ready') {
        world.running.delete(input.replicaId);
        throw ApplicationFailure.create({ type: 'ReplicaDied', message: behaviour.message, nonRetryable: true });
      }
      if (world.killed.has(input.replicaId)) {
        throw ApplicationFailure.create({ type: 'ReplicaDied', message: `replica ${input.replicaId} stopped (${world.killed.get(input.replicaId)})`, nonRetryable: true });
      }
      stillHealthy();
    },
    /** The replicas killed or terminated since; while there are none, "still healthy" (see stillHealthy). */
    async watchFleet(input: FleetWatchInput) {
      world.fleetWatches.push(input.replicas.map((r) => r.replicaId));
      // The router's table is the last traffic call (as the real watch reads it): with `routed`, the
      // routed replicas are watched too, and one of a 'dies-after-ready' version dies once watched.
      // A routed watch looks for a second (real time; time is not skipped meanwhile) before it says
      // "still healthy", as the real one probes every period.
      const lostNow = () => {
        const routed = input.routed || input.onlyWhileRouted ? (world.trafficCalls.at(-1) ?? []).filter((b) => b.weight > 0) : undefined;
        const routedIds = new Set(routed?.map((b) => b.replicaId));
        const listed = routed ? input.replicas.filter((r) => routedIds.has(r.replicaId)) : input.replicas;
        const others = input.routed && routed ? routed.filter((b) => !input.replicas.some((r) => r.replicaId === b.replicaId)) : [];
        for (const b of others) {
          const behaviour = world.readiness.get(versionOf(b.replicaId));
          if (behaviour?.kind === 'dies-after-ready' && world.running.delete(b.replicaId)) world.killed.set(b.replicaId, behaviour.message);
        }
        return [...listed, ...others]
          .filter((r) => world.killed.has(r.replicaId) || !world.running.has(r.replicaId))
          .map((r) => ({ replicaId: r.replicaId, reason: `replica ${r.replicaId} stopped (${world.killed.get(r.replicaId) ?? 'terminated'})` }));
      };
      let lost = lostNow();
      // While a 'dies-after-ready' version is about, look in real time (time is not skipped
      // meanwhile) for one of its replicas to be routed, until 30 s pass with no traffic change (a
      // busy machine's steps can be seconds apart); otherwise look again an hour later.
      const doomed = () => [...world.readiness].some(([, r]) => r.kind === 'dies-after-ready');
      let calls = world.trafficCalls.length;
      for (let quiet = 0; input.routed && lost.length === 0 && doomed() && quiet < 30_000; quiet += 25) {
        await sleepUnlessCancelled(25);
        if (world.trafficCalls.length !== calls) [calls, quiet] = [world.trafficCalls.length, 0];
        lost = lostNow();
      }
      if (lost.length === 0) stillHealthy();
      return { lost };
    },
    // As the router does: an ordered change not newer than its writer's last changes nothing.
    async setTraffic(input: SetTrafficInput) {
      const last = lastOrders.get(input.service);
      const stale = input.order && last && input.order.writer === last.writer && input.order.seq <= last.seq;
      if (!stale) {
        if (input.order) lastOrders.set(input.service, input.order);
        world.trafficCalls.push(input.backends);
      }
      return { endpoint: `http://router.test/${input.service}` };
    },
    async drainReplica(input: DrainReplicaInput) {
      world.drained.push(input.replicaId);
      if ((world.trafficCalls.at(-1) ?? []).some((b) => b.replicaId === input.replicaId && b.weight > 0)) world.drainedWhileRouted.push(input.replicaId);
      return { drained: true, inflight: 0 };
    },
    async terminateReplica(input: TerminateReplicaInput) {
      const failure = world.terminateFailure;
      if (failure) throw ApplicationFailure.create({ type: failure.type, message: failure.message, nonRetryable: true });
      const held = terminationHolds.get(input.replicaId);
      if (held) await heldUntil(held);
      // A killed replica is terminated too (its record and resources), once.
      const wasThere = world.running.delete(input.replicaId) || world.killed.delete(input.replicaId);
      if (wasThere) world.terminated.push(input.replicaId);
    },
    async readTrafficStats(input: ReadTrafficStatsInput) {
      const scripted = world.stats.get(input.service) ?? {};
      const read = world.statsReads.filter((s) => s === input.service).length;
      world.statsReads.push(input.service);
      if (!Array.isArray(scripted)) return scripted;
      return scripted[Math.min(read, scripted.length - 1)] ?? {};
    },
    async gpuCapacity() {
      return { totalGpus: world.totalGpus };
    },
  };
  return world;
}
