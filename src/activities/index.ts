/**
 * The side effects of a rollout, as thin functions over the providers and the router.
 * Built by a factory over injected clients (as in temporalio/samples-typescript), so tests
 * and the worker wire them differently. Every activity is idempotent.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { createControlForwarding } from './control-forwarding';
import { heartbeatingWhile, keepHeartbeating } from './heartbeat';
import { parseAccelerators } from '../spec/accelerators';
import { isSecretRef, resolveEnv, SecretUnavailableError } from '../spec/secrets';
import type { Provider } from '../providers/types';
import { ProviderError } from '../providers/types';
import { probePhaseMs, ReplicaDiedError, ReplicaNotReadyError, waitUntilReady } from '../providers/readiness';
import type { RouterAdminClient } from '../router/client';
import type {
  DrainReplicaInput,
  GpuCapacityInput,
  GpuCapacityResult,
  LaunchReplicaInput,
  LaunchReplicaResult,
  ReadTrafficStatsInput,
  ReadTrafficStatsResult,
  SetTrafficInput,
  SetTrafficResult,
  TerminateReplicaInput,
  WaitReplicaReadyInput,
  ReadinessTiming,
  WatchReplicaInput,
} from './types';
import { FailureTypes } from './types';
import type { LostReplica } from '../plan/healing';
import { watchFleetUntilLost, watchUntilUnhealthy, type FleetWatchInput } from './watch';
import { readSecretFile, type SecretFilePolicy } from './secret-files';
import { createStrayReplicaActivities } from './stray-replicas';
import { createSearchAttributeActivities } from './search-attributes';
import { createReplicaSteps } from './start-replica';

export interface ActivityDeps {
  /** Forwards the service workflow's `control` update to its rollout; absent: that update is refused. */
  temporalClient?: Client;
  providers: Record<string, Provider>;
  /** For a provider this worker lacks: how to configure it (said when a spec asks for it). */
  providerHelp?: Record<string, string>;
  router: RouterAdminClient;
  /** The router's traffic URL as clients reach it, e.g. http://127.0.0.1:8080. */
  routerPublicUrl: string;
  /** Where `from_file` secrets may (not) be read from. */
  secretFiles?: SecretFilePolicy;
}

export function createActivities(deps: ActivityDeps) {
  const providerFor = (name: string): Provider => {
    const provider = deps.providers[name];
    if (!provider) {
      const how = deps.providerHelp?.[name];
      throw ApplicationFailure.create({
        type: FailureTypes.providerNotConfigured,
        message: `provider "${name}" is not configured on this worker (configured: ${Object.keys(deps.providers).join(', ')})${how ? `: ${how}` : ''}`,
        nonRetryable: true,
      });
    }
    return provider;
  };

  const launchReplica = async (input: LaunchReplicaInput): Promise<LaunchReplicaResult> => {
    const { spec } = input;
    const accel = parseAccelerators(spec.resources.accelerators);
    const provider = providerFor(spec.resources.provider);
    let env: Record<string, string>;
    try {
      // Secret references are resolved here, on the worker, and go only to the provider.
      env = resolveEnv(spec.env, { env: process.env, readFile: (file) => readSecretFile(file, deps.secretFiles) });
    } catch (err) {
      if (err instanceof SecretUnavailableError) {
        throw ApplicationFailure.create({ type: FailureTypes.invalidRequest, message: `${input.replicaId}: ${err.message}`, nonRetryable: true });
      }
      throw err;
    }
    try {
      // A launch can take minutes (an EC2 instance); heartbeats let a crashed worker's attempt
      // time out in seconds, and the next attempt finds what this one started (idempotent).
      const handle = await heartbeatingWhile(() =>
        provider.launch({
          replicaId: input.replicaId,
          service: input.service,
          version: input.version,
          run: spec.run,
          env,
          gpus: accel?.count ?? 0,
          accelerator: accel?.name,
          instanceType: spec.resources.instance_type,
          resources: spec.resources,
          secretNames: Object.keys(spec.env).filter((name) => isSecretRef(spec.env[name])),
        }),
      );
      return { replicaId: handle.replicaId, endpoint: handle.endpoint, gpuIds: handle.gpuIds };
    } catch (err) {
      throw asFailure(err);
    }
  };

  const waitReplicaReady = async (input: WaitReplicaReadyInput): Promise<ReadinessTiming> => {
    const provider = providerFor(input.provider);
    const started = Date.now();
    let lastProbe: Record<string, unknown> = { attempt: 0 };
    const stopHeartbeats = keepHeartbeating(() => ({ ...lastProbe, waitedSeconds: Math.round((Date.now() - started) / 1000) }));
    try {
      const ready = await waitUntilReady({
        endpoint: input.endpoint,
        path: input.probe.path,
        periodMs: input.probe.period_seconds * 1000,
        phaseMs: probePhaseMs(input.replicaId, input.probe.period_seconds * 1000),
        ...(input.extraProbesAtMs ? { extraProbesAtMs: input.extraProbesAtMs } : {}),
        timeoutMs: input.probe.timeout_seconds * 1000,
        deadline: input.deadline,
        signal: Context.current().cancellationSignal,
        isAlive: async () => {
          const d = await provider.describe(input.replicaId);
          return { alive: d.state === 'running', detail: d.exitInfo ?? d.state };
        },
        onProbe: (r) => (lastProbe = { attempt: r.attempt, status: r.status, error: r.error }),
      });
      return { readyAtMs: ready.readyAtMs, ...(ready.notReadyAtMs !== undefined ? { notReadyAtMs: ready.notReadyAtMs } : {}) };
    } catch (err) {
      if (err instanceof ReplicaNotReadyError) {
        throw ApplicationFailure.create({ type: FailureTypes.replicaNotReady, message: err.message, nonRetryable: true });
      }
      if (err instanceof ReplicaDiedError) {
        throw ApplicationFailure.create({ type: FailureTypes.replicaDied, message: err.message, nonRetryable: true });
      }
      throw err;
    } finally {
      stopHeartbeats();
    }
  };

  /** Waits until the router has no request in flight on the replica (or the drain timeout passes). */
  const drainReplica = (input: DrainReplicaInput): Promise<{ drained: boolean; inflight: number }> =>
    heartbeatingWhile(() => deps.router.waitForDrain(input.service, input.replicaId, input.timeoutMs));

  /** An ordered change the router already has, or a newer one of the same rollout, changes nothing: done all the same. */
  const setTraffic = async (input: SetTrafficInput): Promise<SetTrafficResult> => {
    await deps.router.setBackends(input.service, input.backends, input.order);
    return { endpoint: `${deps.routerPublicUrl.replace(/\/$/, '')}/${input.service}` };
  };

  const terminateReplica = async (input: TerminateReplicaInput): Promise<void> => {
    const provider = providerFor(input.provider);
    try {
      // Termination waits out the replica's grace period (its streams finish): heartbeat meanwhile.
      await heartbeatingWhile(() => provider.terminate(input.replicaId));
    } catch (err) {
      throw asFailure(err);
    }
  };

  return {
    ...createControlForwarding(deps.temporalClient),
    ...createStrayReplicaActivities(deps.providers),
    ...createSearchAttributeActivities(deps.temporalClient),
    launchReplica,
    waitReplicaReady,
    drainReplica,
    terminateReplica,
    ...createReplicaSteps({ launchReplica, waitReplicaReady, drainReplica, terminateReplica, setTraffic }),

    /** Runs while a new replica serves during a rollout; fails when its process dies or its probe keeps failing. */
    async watchReplica(input: WatchReplicaInput): Promise<void> {
      let failures = 0;
      const stopHeartbeats = keepHeartbeating(() => ({ failures }));
      try {
        await watchUntilUnhealthy(providerFor(input.provider), input, Context.current().cancellationSignal, (n) => (failures = n));
      } finally {
        stopHeartbeats();
      }
    },

    /**
     * Watches a service's serving replicas between rollouts (and a rollout's inherited ones):
     * returns those lost (process gone, or `failure_threshold` failed probes in a row), or none
     * after `maxWatchMs`. Cancelled when a rollout takes over.
     */
    async watchFleet(input: FleetWatchInput): Promise<{ lost: LostReplica[] }> {
      const ctx = Context.current();
      const carried = (ctx.info.heartbeatDetails as { failures?: Record<string, number> } | undefined)?.failures ?? {};
      const failures: Record<string, number> = { ...carried };
      const stopHeartbeats = keepHeartbeating(() => ({ failures }));
      try {
        // The router's table (an unknown service routes nothing); an unreachable router is retried by the activity's policy.
        const routedBackends = async () => (await deps.router.getService(input.service))?.backends ?? [];
        return await watchFleetUntilLost(providerFor(input.provider), input, ctx.cancellationSignal, failures, routedBackends);
      } finally {
        stopHeartbeats();
      }
    },

    setTraffic,

    /** The router's cumulative per-version counters for canary analysis; an unreachable router is retried. */
    async readTrafficStats(input: ReadTrafficStatsInput): Promise<ReadTrafficStatsResult> {
      return deps.router.countersByVersion(input.service);
    },

    async gpuCapacity(input: GpuCapacityInput): Promise<GpuCapacityResult> {
      const inventory = await providerFor(input.provider).gpus();
      return { totalGpus: inventory.total > 0 || inventory.strict ? inventory.total : null };
    },
  };
}

/** Provider errors become ApplicationFailures whose type and retryability the workflow's policies read. */
function asFailure(err: unknown): unknown {
  if (err instanceof ProviderError) {
    return ApplicationFailure.create({ type: err.type, message: err.message, nonRetryable: !err.retryable });
  }
  return err;
}

export { readSecretFile };
