import { heartbeat } from '@temporalio/activity';

/** Heartbeat period, well inside the workflows' 20 s heartbeat timeout. */
export const HEARTBEAT_EVERY_MS = 5_000;

/**
 * Heartbeats on a timer, independent of the probe period (a spec may probe every 60 s), with
 * whatever `details` returns at that moment; call the result to stop.
 */
export function keepHeartbeating(details: () => unknown, everyMs = HEARTBEAT_EVERY_MS): () => void {
  heartbeat(details());
  const timer = setInterval(() => heartbeat(details()), everyMs);
  return () => clearInterval(timer);
}
