/**
 * Every `patched()` id, in one place. A change that adds, removes or reorders workflow commands
 * runs behind one of these, so that workflows started by an older worker replay as they ran
 * (see "Changing a workflow safely" in the README). Once no such workflow can still be running,
 * a patch moves to `deprecatePatch()` and then goes.
 */
export const PATCHES = {
  /** Self-healing: the service watches its serving replicas between rollouts and replaces lost ones. */
  selfHealing: 'self-healing',
  /** A rollout watches the replicas it started with (the serving version's). */
  watchServingReplicas: 'watch-serving-replicas',
  /** A rollout whose GPU request can never be met fails at once. */
  gpuShortfallFailsFast: 'gpu-shortfall-fails-fast',
  /** Removing a replica whose launch is still going cancels the launch after 2 s. */
  cancelSlowLaunches: 'cancel-slow-launches',
  /** A rollout held for long continues as new before its history nears Temporal's limits. */
  rolloutContinuesAsNew: 'rollout-continues-as-new',
  /**
   * Self-healing launches a lost replica's replacement while the lost one is still being
   * terminated (a hung replica takes its whole grace period to stop), surge permitting.
   */
  healLaunchesWhileRemoving: 'heal-launches-while-removing',
  /** The service forwards a control signal's payload compacted (a reason clipped, junk as a short text), not as it came. */
  compactForwardedSignals: 'compact-forwarded-signals',
  /**
   * A rollout that ends terminates the replicas of the version that lost (or, after a success,
   * left) which the provider still holds and the rollout no longer remembers (found by tag on EC2).
   */
  sweepStrayReplicas: 'sweep-stray-replicas',
  /**
   * After a rollout workflow itself failed (cancelled, terminated), the service puts traffic back
   * on the replicas it knows and terminates every replica of the failed version.
   */
  sweepAfterFailedRollout: 'sweep-after-failed-rollout',
  /** A canary step taken while the canary has no traffic yet (a timed pause first) needs no passed analysis check. */
  noAnalysisBeforeTraffic: 'no-analysis-before-traffic',
  /** An activity that failed for good ends the rollout as failed (with its message) instead of failing the workflow. */
  activityFailureEndsRollout: 'activity-failure-ends-rollout',
  /** Self-healing whose removal fails for good waits a minute and plans again, instead of failing the service workflow. */
  healingRetriesFailedRemovals: 'healing-retries-failed-removals',
  /**
   * Search attributes: before a rollout the service asks which the namespace has (a local
   * activity), tags itself with RolloutService and starts the rollout with its attributes; the
   * rollout upserts its phase, canary percent and outcome as they change.
   */
  rolloutSearchAttributes: 'rollout-search-attributes',
  /**
   * Batched rollout steps (batched-fleet.ts): a replica's launch and readiness in one activity
   * with its step's retirements alongside, traffic changes as activities of their own, the next launch
   * not waiting for an old replica's termination, one timer per wake-up time, continuing as new
   * mid-rollout below Temporal's suggestion.
   */
  batchedReplicaSteps: 'batched-replica-steps',
  /**
   * Batched steps whose traffic change rides on the step's first activity (the first start, or
   * the retirement) instead of a call of its own, ordered by a sequence number the router keeps,
   * so that a retried or late attempt never undoes a newer change. Implies batched steps.
   */
  trafficWithSteps: 'traffic-with-steps',
} as const;
