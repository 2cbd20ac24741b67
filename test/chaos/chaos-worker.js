#!/usr/bin/env node
/**
 * The worker of the worker-crash chaos suite: `rollout worker` exactly (the built dist/worker.js,
 * its configuration from the same environment), plus an activity interceptor that says on stdout
 * when each activity attempt starts, so the harness can SIGKILL this process *inside* a chosen
 * activity. Activities that take milliseconds (setTraffic, gpuCapacity…) are held for
 * CHAOS_HOLD_MS after saying so, or the kill would land after them. CHAOS_BUNDLE is a prebuilt
 * workflow bundle: a restart takes a second or two, not a webpack run.
 */
const { runWorker, workerConfigFromEnv } = require('../../dist/worker');

const HELD = new Set((process.env.CHAOS_HELD_ACTIVITIES ?? '').split(',').filter(Boolean));
const HOLD_MS = Number(process.env.CHAOS_HOLD_MS ?? 300);

class AnnounceActivity {
  constructor(ctx) {
    this.ctx = ctx;
  }

  async execute(input, next) {
    const { activityType, workflowExecution, attempt } = this.ctx.info;
    process.stdout.write(`chaos: activity ${activityType} ${workflowExecution.workflowId} attempt ${attempt} at ${new Date().toISOString()}\n`);
    if (HELD.has(activityType)) await new Promise((resolve) => setTimeout(resolve, HOLD_MS));
    return next(input);
  }
}

runWorker(workerConfigFromEnv(), {
  interceptors: { activity: [(ctx) => ({ inbound: new AnnounceActivity(ctx) })] },
  ...(process.env.CHAOS_BUNDLE ? { workflowBundle: { codePath: process.env.CHAOS_BUNDLE } } : {}),
}).catch((err) => {
  process.stderr.write(`chaos worker: ${err?.stack ?? err}\n`);
  process.exit(1);
});
