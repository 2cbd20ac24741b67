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
  // Every workflow of a fleet stays cached (sticky), so a workflow task replays nothing: each
  // service holds two while it rolls out (its service workflow and its rollout). The SDK's default
  // depends on the heap limit (600 per GiB above 200 MiB: 2,311 with a 4 GiB heap, 10 with a
  // 256 MiB one); this does not. A cached workflow costs a few hundred KiB of heap at most.
  maxCachedWorkflows: 1000,
  // Workflow-task pollers: 20, half of them on the shared queue (the SDK: 10, a fifth shared, so
  // 2). A server splits the shared queue into 4 partitions (the dev server too, unless told, see
  // src/dev/stack.ts) and a task waits in its partition until a poll lands there: with 2 pollers,
  // every rollout's first task and every task moved off the sticky queue waited up to tens of
  // seconds (bench fleet, 100 rollouts: p99 30-43 s on the shared queue, 12 s with 10 pollers).
  // SDK 1.24 reads the pollers from these (its maxConcurrent*TaskPolls options are no longer read).
  workflowTaskPollerBehavior: { type: 'simple-maximum', maximum: 20 },
  nonStickyToStickyPollRatio: 0.5,
  activityTaskPollerBehavior: { type: 'simple-maximum', maximum: 10 },
} as const;
