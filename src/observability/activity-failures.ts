/** Counts failed activity attempts by activity type (rollout_activity_failures_total). */
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { WorkerMetrics } from './metrics';

/**
 * A worker activity interceptor: every attempt that throws counts once, a retried one each
 * time it fails (what a dashboard of failing providers wants); a cancelled one does not (the
 * rollout moved on, nothing failed).
 */
export function countActivityFailures(metrics: WorkerMetrics): ActivityInterceptorsFactory {
  return (ctx: Context) => ({
    inbound: {
      async execute(input, next) {
        try {
          return await next(input);
        } catch (err) {
          if (!(err instanceof CancelledFailure) && !ctx.cancellationSignal.aborted) metrics.activityFailed(ctx.info.activityType);
          throw err;
        }
      },
    },
  });
}
