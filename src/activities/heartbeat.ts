import { Context, heartbeat } from '@temporalio/activity';

/**
 * Heartbeat period, well inside the workflows' heartbeat timeout (HEARTBEAT_TIMEOUT in
 * replica-fleet.ts, 5 s): a worker that dies is noticed within seconds, and the next attempt of
 * its activity starts on a worker that is up, however long the activity legitimately takes. The
 * worker sends them on at this pace too (maxHeartbeatThrottleInterval in worker.ts); the SDK's
 * default throttle, 80% of the timeout, would leave a busy machine one second of slack.
 */
export const HEARTBEAT_EVERY_MS = 1_000;

/**
 * An activity's heartbeat period for its heartbeat timeout: a fifth of it, never more often than
 * HEARTBEAT_EVERY_MS. Every heartbeat is a write on the Temporal server, so an activity whose
 * workflow gave it a longer timeout (the idle watch of a service's serving replicas) heartbeats
 * that much less, with the same slack for a busy machine.
 */
export function heartbeatEveryMs(heartbeatTimeoutMs: number | undefined): number {
  return heartbeatTimeoutMs ? Math.max(HEARTBEAT_EVERY_MS, Math.floor(heartbeatTimeoutMs / 5)) : HEARTBEAT_EVERY_MS;
}

/**
 * Heartbeats on a timer, independent of the probe period (a spec may probe every 60 s), with
 * whatever `details` returns at that moment; call the result to stop.
 */
export function keepHeartbeating(details: () => unknown = () => undefined, everyMs = heartbeatEveryMs(Context.current().info.heartbeatTimeoutMs)): () => void {
  heartbeat(details());
  const timer = setInterval(() => heartbeat(details()), everyMs);
  return () => clearInterval(timer);
}

/** Runs `work` while heartbeating (for activities whose duration is not known in advance). */
export async function heartbeatingWhile<T>(work: () => Promise<T>, details?: () => unknown): Promise<T> {
  const stop = keepHeartbeating(details);
  try {
    return await work();
  } finally {
    stop();
  }
}
