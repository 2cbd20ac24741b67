/**
 * What a rollout's history says about its reaction to a failure, read from the events' own
 * times (the Temporal server's clock): each activity with its input and when it was scheduled,
 * started and closed; the control updates it accepted, with the workflow task that carried them.
 */
'use strict';
const { temporal } = require('@temporalio/proto');

const E = temporal.api.enums.v1.EventType;

/** An event time (seconds and nanos) as epoch milliseconds, sub-millisecond kept. */
const ms = (ts) => Number(ts.seconds) * 1000 + (ts.nanos ?? 0) / 1e6;

/** A JSON payload (the default data converter's) as a value; undefined when it is not JSON. */
function decode(payload) {
  try {
    return JSON.parse(Buffer.from(payload.data ?? []).toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Every activity of `events`: [{id, type, input, scheduledAt, startedAt?, closedAt?, closed?: 'completed'|'failed'|…}], in schedule order. */
function activities(events) {
  const byScheduled = new Map();
  const out = [];
  for (const e of events) {
    const id = Number(e.eventId);
    if (e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) {
      const a = e.activityTaskScheduledEventAttributes;
      const activity = { id, type: a.activityType?.name, input: (a.input?.payloads ?? []).map(decode), scheduledAt: ms(e.eventTime) };
      byScheduled.set(id, activity);
      out.push(activity);
      continue;
    }
    const closes = {
      [E.EVENT_TYPE_ACTIVITY_TASK_STARTED]: ['started', e.activityTaskStartedEventAttributes],
      [E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]: ['completed', e.activityTaskCompletedEventAttributes],
      [E.EVENT_TYPE_ACTIVITY_TASK_FAILED]: ['failed', e.activityTaskFailedEventAttributes],
      [E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT]: ['timed_out', e.activityTaskTimedOutEventAttributes],
      [E.EVENT_TYPE_ACTIVITY_TASK_CANCELED]: ['canceled', e.activityTaskCanceledEventAttributes],
    }[e.eventType];
    if (!closes) continue;
    const [what, attrs] = closes;
    const activity = byScheduled.get(Number(attrs.scheduledEventId));
    if (!activity) continue;
    if (what === 'started') activity.startedAt = ms(e.eventTime);
    else {
      activity.closed = what;
      activity.closedAt = ms(e.eventTime);
      if (what === 'completed') activity.result = (attrs.result?.payloads ?? []).map(decode)[0];
    }
  }
  return out;
}

/**
 * The control updates the workflow accepted: [{request, acceptedAt, taskScheduledAt}], where
 * taskScheduledAt is the workflow task that delivered it (the latest one scheduled before the
 * acceptance): the server scheduled it when the request arrived, or earlier if one was pending.
 */
function acceptedUpdates(events) {
  let taskScheduledAt;
  const out = [];
  for (const e of events) {
    if (e.eventType === E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) taskScheduledAt = ms(e.eventTime);
    if (e.eventType === E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED) {
      const args = e.workflowExecutionUpdateAcceptedEventAttributes.acceptedRequest?.input?.args?.payloads ?? [];
      out.push({ request: args.map(decode)[0], acceptedAt: ms(e.eventTime), taskScheduledAt });
    }
  }
  return out;
}

/**
 * An activity's traffic change: a setTraffic's own, or one carried by a startReplica or
 * retireReplicas (traffic-with-steps), which the activity sets first thing.
 */
function trafficOf(a) {
  if (a.type === 'setTraffic') return a.input[0];
  if (a.type === 'startReplica' || a.type === 'retireReplicas') return a.input[0]?.traffic;
  return undefined;
}

/**
 * The traffic change that took `version` out of traffic: the first one, after one that routed
 * it, whose backends give it no weight, with `tableAt`, when the router had it: a setTraffic's
 * close, or the start of the activity that carried it (it sets the table before anything else).
 * Undefined when there is none.
 */
function trafficLeaving(acts, version) {
  let routed = false;
  for (const a of acts) {
    const change = trafficOf(a);
    if (!change) continue;
    const has = (change.backends ?? []).some((b) => b.version === version && b.weight > 0);
    if (has) routed = true;
    else if (routed) return { ...a, tableAt: a.type === 'setTraffic' ? a.closedAt : a.startedAt };
  }
  return undefined;
}

module.exports = { activities, acceptedUpdates, trafficLeaving, ms };
