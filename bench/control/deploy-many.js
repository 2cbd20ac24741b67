/**
 * Many deploys at once, the way `rollout deploy` sends one (src/cli/commands/deploy.ts): the spec
 * loaded and checked by the CLI's own loader, then the service workflow's `deploy` update with
 * start. A Node process per deploy would cost ~50 MB and a second of CPU each; this costs a gRPC
 * call. Starts run `concurrency` at a time; waits poll `describe` the same bounded way.
 */
'use strict';
const path = require('node:path');
const { ROOT } = require('./stack');

const dist = (p) => require(path.join(ROOT, 'dist', p));

/** Runs `fn` over `items`, at most `limit` at once; results in input order. */
async function mapBounded(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  });
  await Promise.all(lanes);
  return results;
}

/**
 * Sends the deploy update for each spec file (`specPaths`), `concurrency` at once; resolves to
 * the rollout workflow ids started (throws when one deploy is refused or changes nothing).
 */
async function deployMany(client, specPaths, { concurrency = 20 } = {}) {
  const { WithStartWorkflowOperation } = require('@temporalio/client');
  const { loadSpecFile } = dist('spec/load');
  const { deployUpdate } = dist('workflows/messages');
  const { serviceWorkflowId, TASK_QUEUE } = dist('workflows/types');
  return mapBounded(specPaths, concurrency, async (specPath) => {
    const loaded = await loadSpecFile(specPath);
    if (!loaded.ok) throw new Error(`invalid spec ${specPath}: ${JSON.stringify(loaded.issues)}`);
    const spec = loaded.spec;
    const result = await client.workflow.executeUpdateWithStart(deployUpdate, {
      args: [{ spec }],
      startWorkflowOperation: new WithStartWorkflowOperation('serviceWorkflow', {
        workflowId: serviceWorkflowId(spec.name),
        taskQueue: TASK_QUEUE,
        args: [{ name: spec.name }],
        workflowIdConflictPolicy: 'USE_EXISTING',
        staticSummary: `service ${spec.name}`,
      }),
    });
    if (!result.rolloutWorkflowId) throw new Error(`deploy of ${spec.name} started no rollout: ${result.reason}`);
    return result.rolloutWorkflowId;
  });
}

/**
 * Waits until every workflow of `ids` has closed (polling describe, `concurrency` at once);
 * resolves to their descriptions. Rejects after `timeoutMs`, or once none has closed for
 * `stallMs` (a worker that stopped making progress), naming how many still run.
 */
async function waitClosed(client, ids, { concurrency = 20, pollMs = 1000, timeoutMs = 20 * 60_000, stallMs = 180_000 } = {}) {
  const until = Date.now() + timeoutMs;
  const done = new Map();
  let progressAt = Date.now();
  let closed = 0;
  for (;;) {
    const open = ids.filter((id) => !done.has(id));
    if (open.length === 0) return ids.map((id) => done.get(id));
    if (done.size > closed) [closed, progressAt] = [done.size, Date.now()];
    const why = Date.now() > until ? `after ${timeoutMs / 1000} s` : Date.now() - progressAt > stallMs ? `with none closing for ${stallMs / 1000} s` : undefined;
    if (why) throw new Error(`${open.length} of ${ids.length} workflows still running ${why} (e.g. ${open.slice(0, 3).join(', ')})`);
    await mapBounded(open, concurrency, async (id) => {
      const d = await client.workflow.getHandle(id).describe();
      if (d.status.name !== 'RUNNING') done.set(id, d);
    });
    if (ids.some((id) => !done.has(id))) await new Promise((r) => setTimeout(r, pollMs));
  }
}

module.exports = { mapBounded, deployMany, waitClosed };
