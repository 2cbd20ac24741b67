/**
 * How much one worker runs at once: the Temporal worker options that bound a fleet's rollouts
 * (README "How many workers"; measured by `npm run bench:control`, part fleet).
 */
export const WORKER_CONCURRENCY = {
  // Temporal's default is 100, but here most activities are long waits, not work: every service
  // with serving replicas holds one `watchFleet` activity for up to an hour (its self-healing
  // watch), and every rollout in flight one more, besides its launches and drains. At 100, the
  // 101st service's activities never started (bench fleet, 200 services: 122 first deploys done,
  // the other 78 stuck behind 217 activities in the backlog for minutes). A slot costs a promise
  // and a probe now and then; the event loop, not this number, is what a busy worker runs out of.
  maxConcurrentActivityTaskExecutions: 2000,
  // Temporal's defaults (workflow code runs on one thread: more slots would only queue there).
  maxConcurrentWorkflowTaskExecutions: 40,
  maxConcurrentLocalActivityExecutions: 100,
  // SDK 1.24 reads the pollers from these (its maxConcurrent*TaskPolls options are no longer read);
  // 10 each is its default.
  workflowTaskPollerBehavior: { type: 'simple-maximum', maximum: 10 },
  activityTaskPollerBehavior: { type: 'simple-maximum', maximum: 10 },
} as const;
