/**
 * What workflow histories say about a worker's load: every workflow task's schedule-to-start
 * latency (WorkflowTaskScheduled → WorkflowTaskStarted: how long it waited for a worker slot and
 * a poll), and which worker (`identity`, pid@host) ran each activity that completed.
 * Histories are fetched `concurrency` at a time, so a few hundred do not flood the server.
 */
'use strict';
const { temporal } = require('@temporalio/proto');
const { mapBounded } = require('./deploy-many');

const E = temporal.api.enums.v1.EventType;
const TIMEOUT_SCHEDULE_TO_START = temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START;

const ms = (ts) => Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);

/** Events of each workflow of `ids` (all runs: a continued-as-new run is fetched by its id's latest run only). */
async function fetchHistories(client, ids, { concurrency = 8 } = {}) {
  return mapBounded(ids, concurrency, async (id) => ({ id, events: (await client.workflow.getHandle(id).fetchHistory()).events ?? [] }));
}

/**
 * Schedule-to-start latencies (ms) of every workflow task in `events`. A task that timed out on
 * the sticky queue (no poll took it within stickyQueueScheduleToStartTimeout) is scheduled again
 * on the shared queue: its wait counts from the first scheduling, not from the second. With
 * `since` (ms), only tasks first scheduled then or later.
 */
function workflowTaskLatencies(events, { since = -Infinity } = {}) {
  const scheduledAt = new Map();
  const out = [];
  let waitingSince;
  for (const e of events) {
    if (e.eventType === E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED) {
      scheduledAt.set(Number(e.eventId), waitingSince ?? ms(e.eventTime));
      waitingSince = undefined;
    } else if (e.eventType === E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT) {
      const a = e.workflowTaskTimedOutEventAttributes;
      if (a.timeoutType === TIMEOUT_SCHEDULE_TO_START) waitingSince = scheduledAt.get(Number(a.scheduledEventId));
    } else if (e.eventType === E.EVENT_TYPE_WORKFLOW_TASK_STARTED) {
      const at = scheduledAt.get(Number(e.workflowTaskStartedEventAttributes.scheduledEventId));
      if (at !== undefined && at >= since) out.push(ms(e.eventTime) - at);
    }
  }
  return out;
}

/** Activity completions (and failures) by the identity of the worker that ran them. */
function activitiesByIdentity(events) {
  const startedBy = new Map();
  const counts = {};
  for (const e of events) {
    if (e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_STARTED) startedBy.set(Number(e.eventId), e.activityTaskStartedEventAttributes.identity);
    const attrs = e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED ? e.activityTaskCompletedEventAttributes : e.eventType === E.EVENT_TYPE_ACTIVITY_TASK_FAILED ? e.activityTaskFailedEventAttributes : undefined;
    if (attrs) {
      const who = startedBy.get(Number(attrs.startedEventId)) ?? 'unknown';
      counts[who] = (counts[who] ?? 0) + 1;
    }
  }
  return counts;
}

/** Workflow tasks by the identity of the worker that started them. */
function workflowTasksByIdentity(events) {
  const counts = {};
  for (const e of events) {
    if (e.eventType !== E.EVENT_TYPE_WORKFLOW_TASK_STARTED) continue;
    const who = e.workflowTaskStartedEventAttributes.identity || 'unknown';
    counts[who] = (counts[who] ?? 0) + 1;
  }
  return counts;
}

function addCounts(into, counts) {
  for (const [k, v] of Object.entries(counts)) into[k] = (into[k] ?? 0) + v;
  return into;
}

module.exports = { fetchHistories, workflowTaskLatencies, activitiesByIdentity, workflowTasksByIdentity, addCounts };
