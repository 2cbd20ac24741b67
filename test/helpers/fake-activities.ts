/**
 * In-memory activities for workflow tests that are about orchestration: replicas are records,
 * readiness is scripted per version. The Temporal server and client stay real.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import type { createActivities } from '../../src/activities';
import { createControlForwarding } from '../../src/activities/control-forwarding';
import type { StatsSnapshot } from '../../src/plan/analysis';
import type {
  DrainReplicaInput,
  LaunchReplicaInput,
  ReadTrafficStatsInput,
  SetTrafficInput,
  TerminateReplicaInput,
  WaitReplicaReadyInput,
  WatchReplicaInput,
} from '../../src/activities/types';

type Activities = ReturnType<typeof createActivities>;

/** How replicas of a version behave: ready after `readyAfterMs` (real time), never ready, or failing. */
export type Readiness =
  | { kind: 'ready'; afterMs?: number }
  | { kind: 'never' }
  | { kind: 'fail'; message: string }
  /** Becomes ready, then its process dies (the watch reports it). */
  | { kind: 'dies-after-ready'; message: string };

export interface FakeWorld {
  activities: Activities;
  /** Every setTraffic call, in order. */
  trafficCalls: SetTrafficInput['backends'][];
  launched: string[];
  terminated: string[];
  drained: string[];
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
  /**
   * Holds every readiness wait of `version` until the returned function is called, so a test
   * can act while a rollout is certainly mid-way (a fixed load time would race a busy machine).
   */
  hold(version: number): () => void;
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

/** `client`: the real Temporal client the service workflow's control update is forwarded with. */
export function fakeWorld(readiness: Record<number, Readiness> = {}, client?: Client): FakeWorld {
  const world: FakeWorld = {
    trafficCalls: [],
    launched: [],
    terminated: [],
    drained: [],
    running: new Set(),
    peakRunning: new Map(),
    readiness: new Map(Object.entries(readiness).map(([v, r]) => [Number(v), r])),
    stats: new Map(),
    statsReads: [],
    activities: {} as Activities,
    hold(version) {
      let release!: () => void;
      holds.set(version, new Promise<void>((r) => (release = r)));
      return () => {
        holds.delete(version);
        release();
      };
    },
  };
  const holds = new Map<number, Promise<void>>();
  const versionOf = (replicaId: string): number => Number(/-v(\d+)-r\d+$/.exec(replicaId)?.[1]);
  world.activities = {
    ...createControlForwarding(client),
    async launchReplica(input: LaunchReplicaInput) {
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
      if (behaviour.kind === 'ready') await sleepUnlessCancelled(behaviour.afterMs ?? 10);
    },
    async watchReplica(input: WatchReplicaInput) {
      const behaviour = world.readiness.get(versionOf(input.replicaId));
      if (behaviour?.kind === 'dies-after-ready') {
        world.running.delete(input.replicaId);
        throw ApplicationFailure.create({ type: 'ReplicaDied', message: behaviour.message, nonRetryable: true });
      }
      // Healthy replicas: the watch ends at once (the real one runs until cancelled).
    },
    async setTraffic(input: SetTrafficInput) {
      world.trafficCalls.push(input.backends);
      return { endpoint: `http://router.test/${input.service}` };
    },
    async drainReplica(input: DrainReplicaInput) {
      world.drained.push(input.replicaId);
      return { drained: true, inflight: 0 };
    },
    async terminateReplica(input: TerminateReplicaInput) {
      if (world.running.delete(input.replicaId)) world.terminated.push(input.replicaId);
    },
    async readTrafficStats(input: ReadTrafficStatsInput) {
      const scripted = world.stats.get(input.service) ?? {};
      const read = world.statsReads.filter((s) => s === input.service).length;
      world.statsReads.push(input.service);
      if (!Array.isArray(scripted)) return scripted;
      return scripted[Math.min(read, scripted.length - 1)] ?? {};
    },
    async gpuCapacity() {
      return { totalGpus: null };
    },
  };
  return world;
}
