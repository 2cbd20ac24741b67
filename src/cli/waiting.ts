/**
 * What a rollout (or a healing service) is waiting for, from its workflow's pending activities:
 * an activity that failed and is being retried says why in its last failure ("no g6.xlarge
 * capacity in us-east-1a, us-east-1b; …"). Temporal keeps that in the workflow's description,
 * not in its history, so the workflow itself does not need to report it.
 */
import type { WorkflowHandle } from '@temporalio/client';

export interface WaitingOn {
  /** The activity type: launchReplica, terminateReplica… */
  activity: string;
  /** Attempts so far (the next one is attempt + 1). */
  attempt: number;
  /** Why the last attempt failed. */
  lastFailure: string;
  /** Epoch ms of the next attempt, when the server said. */
  nextAttemptAt?: number;
}

/** temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED. */
const STARTED = 2;
/** An attempt running this long is taken to be past the failure before it. */
const HEALTHY_AFTER_MS = 30_000;

type Timestamp = { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined;

const epochMs = (t: Timestamp): number | undefined => {
  if (!t?.seconds) return undefined;
  const seconds = typeof t.seconds === 'number' ? t.seconds : t.seconds.toNumber();
  return seconds * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
};

/** The workflow's activities that are being retried after a failure, most attempts first; [] when it cannot be described. */
export async function waitingOn(handle: WorkflowHandle): Promise<WaitingOn[]> {
  let pending;
  try {
    pending = (await handle.describe()).raw.pendingActivities ?? [];
  } catch {
    return []; // just closed, or not allowed to describe: the status without it
  }
  const now = Date.now();
  return pending
    .filter((a) => (a.attempt ?? 1) > 1 && a.lastFailure?.message)
    // An attempt that has been running well for a while (a watch that failed once, long ago) is
    // not waiting on that failure any more.
    .filter((a) => !(a.state === STARTED && (epochMs(a.lastStartedTime) ?? now) < now - HEALTHY_AFTER_MS))
    .map((a) => ({
      activity: a.activityType?.name ?? 'activity',
      attempt: (a.attempt ?? 2) - 1,
      lastFailure: a.lastFailure?.message ?? '',
      ...(epochMs(a.nextAttemptScheduleTime) ? { nextAttemptAt: epochMs(a.nextAttemptScheduleTime) } : {}),
    }))
    .sort((a, b) => b.attempt - a.attempt);
}

/** One line per activity: `launchReplica failed 4 times, retrying in 12 s: llm-v2-r3: no g6.xlarge capacity in …`. */
export function describeWaiting(w: WaitingOn, now = Date.now()): string {
  const next = w.nextAttemptAt !== undefined && w.nextAttemptAt > now ? `, next try in ${Math.ceil((w.nextAttemptAt - now) / 1000)} s` : '';
  return `${w.activity} failed ${w.attempt === 1 ? 'once' : `${w.attempt} times`}${next}: ${w.lastFailure}`;
}
