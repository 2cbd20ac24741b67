/**
 * The activities a rollout's replica fleet calls, with timeouts and retries that fit what each
 * really does. Workflow code: deterministic, no I/O.
 */
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { HEARTBEAT_TIMEOUT } from './heartbeat-timeout';

type Activities = ReturnType<typeof createActivities>;

/** Failure types that no retry can fix. */
export const PERMANENT = ['InvalidRequest', 'CredentialsError', 'ProviderNotConfigured', 'ReplicaNotReady', 'ReplicaDied', 'ReplicaUnhealthy'];

// Every activity either heartbeats within HEARTBEAT_TIMEOUT or has a start-to-close timeout
// close to its real duration, so that after a worker crash the rollout goes on within seconds
// of a worker being back (the next attempt is idempotent: it finds what the last one did).

// Calls to the router and the provider that take milliseconds: each attempt bounded tightly
// (a crash inside one costs this long), with room for a busy machine; a timed-out attempt is retried.
export const { setTraffic, gpuCapacity } = proxyActivities<Activities>({
  startToCloseTimeout: '5 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 30, nonRetryableErrorTypes: PERMANENT },
});

// Termination waits for the replica to stop (its grace period, or an instance shutting down).
export const { terminateReplica } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 30, nonRetryableErrorTypes: PERMANENT },
});

// A launch can take minutes (an EC2 instance). It heartbeats but does not stop half-way when
// cancelled, so a cancelled launch must still complete before we terminate the replica it made
// (otherwise a late launch would leak a process).
export const { launchReplica } = proxyActivities<Activities>({
  startToCloseTimeout: '15 minutes',
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', nonRetryableErrorTypes: PERMANENT },
});

/** How long a removal waits for a launch in flight to settle before cancelling it. */
export const LAUNCH_CANCEL_AFTER_MS = 2_000;

/** Drain takes as long as the longest in-flight request (a stream) or the drain timeout. */
export const DRAIN_TIMEOUT_MS = 30_000;
export const { drainReplica } = proxyActivities<Activities>({
  startToCloseTimeout: DRAIN_TIMEOUT_MS + 60_000,
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { maximumAttempts: 3 },
});

/** Long waits heartbeat; a worker that dies is noticed within the heartbeat timeout and the wait resumes elsewhere. */
export function longWaits(initialDelaySeconds: number) {
  return proxyActivities<Activities>({
    startToCloseTimeout: (initialDelaySeconds + 600) * 1000,
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', nonRetryableErrorTypes: PERMANENT },
  });
}


/**
 * A replica's whole start (launch, wait until ready) with its step's retirements alongside
 * (activities/start-replica.ts). Bounded by a launch's 15 minutes plus the longest wait for
 * readiness (initial_delay_seconds) and a drain; heartbeats throughout. Its cancellation waits
 * for the attempt to end, so whatever it launched is known to be terminated afterwards.
 */
export function replicaStarts(initialDelaySeconds: number) {
  return proxyActivities<Activities>({
    startToCloseTimeout: (15 * 60 + initialDelaySeconds + 600) * 1000 + DRAIN_TIMEOUT_MS,
    heartbeatTimeout: HEARTBEAT_TIMEOUT,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute', nonRetryableErrorTypes: PERMANENT },
  });
}

/** Drain and terminate a batch of replicas in one activity (a blue-green flip, a rollback's removals). */
export const { retireReplicas } = proxyActivities<Activities>({
  startToCloseTimeout: DRAIN_TIMEOUT_MS + 11 * 60_000,
  heartbeatTimeout: HEARTBEAT_TIMEOUT,
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 30, nonRetryableErrorTypes: PERMANENT },
});
