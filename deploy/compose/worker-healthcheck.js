#!/usr/bin/env node
/**
 * The healthcheck of docker-compose.yml's `worker` service: exit 0 once Temporal lists a poller
 * of this host (the worker's identity is `<pid>@<hostname>`, the SDK's default) on the worker's
 * task queue, polled within the last minute; exit 1 otherwise, saying why on stderr. It connects
 * as the worker does (the TEMPORAL_* variables, a profile: src/temporal/connection-config.ts) and
 * reads ROLLOUT_TASK_QUEUE as the worker does (default gpu-rollout). Needs dist/ (the image has it).
 */
'use strict';
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const { Connection } = require(require.resolve('@temporalio/client', { paths: [root] }));
const { loadConnectionConfig } = require(path.join(root, 'dist', 'temporal', 'connection-config.js'));
const { TASK_QUEUE } = require(path.join(root, 'dist', 'workflows', 'types.js'));

const FRESH_MS = 60_000;

async function main() {
  const target = loadConnectionConfig({}, process.env);
  const taskQueue = process.env.ROLLOUT_TASK_QUEUE || TASK_QUEUE;
  const connection = await Connection.connect({ ...target.connectionOptions, connectTimeout: '5s' });
  try {
    const { pollers } = await connection.workflowService.describeTaskQueue({
      namespace: target.namespace,
      taskQueue: { name: taskQueue },
      taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
    });
    const suffix = `@${os.hostname()}`;
    const now = Date.now();
    const ours = (pollers ?? []).filter((p) => (p.identity ?? '').endsWith(suffix));
    const fresh = ours.filter((p) => {
      const seconds = Number(p.lastAccessTime?.seconds ?? 0);
      return now - seconds * 1000 < FRESH_MS;
    });
    if (fresh.length) return 0;
    process.stderr.write(`no worker of ${os.hostname()} polls task queue ${taskQueue} of namespace ${target.namespace} on ${target.address}${ours.length ? ' (its last poll is older than a minute)' : ''}\n`);
    return 1;
  } finally {
    await connection.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`worker healthcheck: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n`);
    process.exit(1);
  },
);
