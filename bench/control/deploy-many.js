/**
 * Many deploys at once, the way `rollout deploy` sends one (src/cli/commands/deploy.ts): the spec
 * loaded and checked by the CLI's own loader, then the service workflow's `deploy` update with
 * start. A Node process per deploy would cost ~50 MB and a second of CPU each; this costs a gRPC
 * call. Starts run `concurrency` at a time; waits are one long poll per workflow.
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
 * Waits until every workflow of `ids` has closed; resolves to their descriptions. Each wait is one
 * long poll for the workflow's close event (what `result()` sends), held by the server until then:
 * polling `describe` once a second for each of a few hundred workflows was itself a load on the
 * server the benchmark measures. Rejects after `timeoutMs`, or once none has closed for `stallMs`
 * (a worker that stopped making progress), naming how many still run.
 */
async function waitClosed(client, ids, { concurrency = 20, timeoutMs = 20 * 60_000, stallMs = 180_000 } = {}) {
  const startedAt = Date.now();
  const open = new Set(ids);
  let progressAt = Date.now();
  const closeOf = async (id) => {
    // A failed, cancelled or terminated workflow has closed too: its outcome is the caller's to read.
    await client.workflow.getHandle(id).result().catch(() => undefined);
    open.delete(id);
    progressAt = Date.now();
  };
  let watchdog;
  const stalled = new Promise((_, reject) => {
    watchdog = setInterval(() => {
      const why = Date.now() - startedAt > timeoutMs ? `after ${timeoutMs / 1000} s` : Date.now() - progressAt > stallMs ? `with none closing for ${stallMs / 1000} s` : undefined;
      if (why) reject(new Error(`${open.size} of ${ids.length} workflows still running ${why} (e.g. ${[...open].slice(0, 3).join(', ')})`));
    }, 1000);
  });
  try {
    await Promise.race([Promise.all(ids.map(closeOf)), stalled]);
  } finally {
    clearInterval(watchdog);
  }
  return mapBounded(ids, concurrency, (id) => client.workflow.getHandle(id).describe());
}

module.exports = { mapBounded, deployMany, waitClosed };
