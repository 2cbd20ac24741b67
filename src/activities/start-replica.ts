/**
 * startReplica: a new replica's launch and wait for readiness, and the retirement (drain,
 * terminate) of the replicas its step took out of traffic, concurrently, in one activity; first
 * of all, the step's traffic change when it carries one. The workflow then learns of all with
 * one completion. Every part is idempotent (a launch finds the replica it already made, a
 * terminate of a gone replica is done, an ordered traffic change already applied or overtaken
 * changes nothing), so a retry redoes it all.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type {
  DrainReplicaInput,
  LaunchReplicaInput,
  LaunchReplicaResult,
  ReadinessTiming,
  RetireFailureDetails,
  RetireReplica,
  RetireReplicasInput,
  RetireReplicasResult,
  SetTrafficInput,
  SetTrafficResult,
  StartReplicaInput,
  StartReplicaResult,
  TerminateReplicaInput,
  WaitReplicaReadyInput,
} from './types';

interface Parts {
  launchReplica(input: LaunchReplicaInput): Promise<LaunchReplicaResult>;
  waitReplicaReady(input: WaitReplicaReadyInput): Promise<ReadinessTiming | void>;
  drainReplica(input: DrainReplicaInput): Promise<unknown>;
  terminateReplica(input: TerminateReplicaInput): Promise<void>;
  setTraffic(input: SetTrafficInput): Promise<SetTrafficResult>;
}

/** startReplica, and retireReplicas: a batch of retirements alone (no replica starts in their step). */
export function createReplicaSteps(parts: Parts) {
  const retireOne = async (service: string, r: RetireReplica, drainTimeoutMs: number): Promise<void> => {
    if (r.drain) await parts.drainReplica({ service, replicaId: r.replicaId, timeoutMs: drainTimeoutMs });
    await parts.terminateReplica({ replicaId: r.replicaId, provider: r.provider });
  };

  /**
   * Fails with the new replica's own failure (ReplicaNotReady, a launch error…) when it did not
   * start, after the retirements ended either way; with a retirement's failure, marked by
   * RetireFailureDetails, when only that failed. Cancelled (a rollback removing the new replica):
   * the wait for readiness stops at once, the retirements still finish, then it reports cancelled.
   */
  async function startReplica(input: StartReplicaInput): Promise<StartReplicaResult> {
    const { retire, drainTimeoutMs, probe, deadline, traffic: change, extraProbesAtMs, ...launch } = input;
    // Before the retirements: a replica is drained only once it is out of the router's table.
    // A router that cannot be reached fails the attempt before anything else (retried).
    const traffic = change ? await parts.setTraffic(change) : undefined;
    const retiring = Promise.allSettled(retire.map((r) => retireOne(input.service, r, drainTimeoutMs)));
    let started: PromiseSettledResult<StartReplicaResult>;
    try {
      const result = await parts.launchReplica(launch);
      const readiness = await parts.waitReplicaReady({ replicaId: input.replicaId, provider: input.spec.resources.provider, endpoint: result.endpoint, probe, deadline, ...(extraProbesAtMs ? { extraProbesAtMs } : {}) });
      started = { status: 'fulfilled', value: readiness ? { ...result, readiness } : result };
    } catch (err) {
      started = { status: 'rejected', reason: err };
    }
    const retired = await retiring;
    if (started.status === 'rejected') throw started.reason;
    const failedRetire = retired.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failedRetire) throw asRetireFailure(failedRetire.reason);
    return traffic ? { ...started.value, traffic } : started.value;
  }

  /**
   * Sets the carried traffic change first, then drains (those that served) and terminates every
   * one, concurrently; fails with the first failure once all ended.
   */
  async function retireReplicas(input: RetireReplicasInput): Promise<RetireReplicasResult> {
    const traffic = input.traffic ? await parts.setTraffic(input.traffic) : undefined;
    const retired = await Promise.allSettled(input.retire.map((r) => retireOne(input.service, r, input.drainTimeoutMs)));
    const failed = retired.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    return traffic ? { traffic } : {};
  }

  return { startReplica, retireReplicas };
}

/** A retirement's failure, with its type and retryability kept, marked as not the new replica's. */
function asRetireFailure(err: unknown): ApplicationFailure {
  const details: RetireFailureDetails = { retiring: true };
  if (err instanceof ApplicationFailure) {
    return ApplicationFailure.create({ type: err.type ?? 'RetireFailed', message: err.message, nonRetryable: err.nonRetryable ?? false, details: [details] });
  }
  return ApplicationFailure.create({ type: 'RetireFailed', message: err instanceof Error ? err.message : String(err), details: [details] });
}
