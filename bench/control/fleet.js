/**
 * Fleet: how many rollouts one worker carries at once. For each count N (a fresh `rollout dev`
 * stack each): N services of 1 or 2 fast fake replicas are first deployed, all concurrently, then
 * all rolled out to a new version at once. The figure is the p99 of the workflow-task
 * schedule-to-start latency (WorkflowTaskScheduled → WorkflowTaskStarted, sticky and shared queue
 * alike; task-latency.js) over every workflow task of the N rollout workflows and of their
 * service workflows from the rollouts' start on, read from their histories; the largest N whose
 * rollouts all succeed with that p99 under 1 s is the answer. The worker's RSS and CPU and the
 * Temporal dev server's CPU (from /proc of their pids) are sampled while the rollouts run.
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ROOT, startStack, modelServerSpec, writeSpec, temporalClient } = require('./stack');
const { stackPorts } = require('./ports');
const { markdownTable, percentile } = require('./report');
const { deployMany, waitClosed, mapBounded } = require('./deploy-many');
const { fetchHistories, workflowTaskLatencies } = require('./task-latency');
const { sampleProcess, childPids } = require('./proc-sampler');

// From small counts up, so that the largest passing one is found even when it is below 50.
const COUNTS = [10, 20, 50, 100, 200, 300, 400];
const QUICK_COUNTS = [20, 50];
const TARGET_COUNT = 200;
const P99_LIMIT_MS = 1000;
/** Fake replicas: ready this long after start (the figure is the worker's, not the replicas'). */
const LOAD_SECONDS = 0.2;
/** Deploys sent through the real CLI at each count (the rest go the CLI's way, via the client). */
const CLI_DEPLOYS = 2;

/** The worker settings that bound it (src/worker.ts; Temporal's defaults where it sets none). */
const { serviceWorkflowId } = require(path.join(ROOT, 'dist', 'workflows', 'types'));

function workerSettings() {
  const { WORKER_CONCURRENCY } = require(path.join(__dirname, '..', '..', 'dist', 'worker-concurrency'));
  return WORKER_CONCURRENCY;
}

function describeSettings(settings) {
  const shown = Object.entries(settings).map(([k, v]) => `${k} ${typeof v === 'object' ? v.maximum : v}`);
  if (!('maxCachedWorkflows' in settings)) shown.push("maxCachedWorkflows the SDK's default (about 600 per GiB of heap above 200 MiB)");
  return shown.join(', ');
}

/** Spec files for service `name` at v1 and v2. */
function specsFor(name, replicas) {
  const spec = (version) => writeSpec(modelServerSpec({ name, version, replicas, loadSeconds: LOAD_SECONDS, surge: 1, periodSeconds: 1, fake: true }));
  return { v1: spec('v1'), v2: spec('v2') };
}

/** Deploys `paths`: the first CLI_DEPLOYS with the CLI (no --wait), the rest through the client. */
async function deployAll(stack, client, paths) {
  const viaCli = paths.slice(0, CLI_DEPLOYS);
  const cliIds = await Promise.all(
    viaCli.map(async (p) => {
      const r = await stack.cli(['deploy', p, '-o', 'json']);
      if (r.code !== 0) throw new Error(`rollout deploy ${p} exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout).rolloutWorkflowId;
    }),
  );
  return [...cliIds, ...(await deployMany(client, paths.slice(CLI_DEPLOYS), { concurrency: 25 }))];
}

/** Outcomes of closed rollout workflows: {succeeded, other: [ids that did not succeed]}. */
async function outcomes(client, ids) {
  const results = await mapBounded(ids, 20, async (id) => {
    try {
      return { id, outcome: (await client.workflow.getHandle(id).result()).outcome };
    } catch (err) {
      return { id, outcome: `error: ${err.message}` };
    }
  });
  return { succeeded: results.filter((r) => r.outcome === 'succeeded').length, other: results.filter((r) => r.outcome !== 'succeeded') };
}

function latencyFigures(histories, opts) {
  const all = histories.flatMap((h) => workflowTaskLatencies(h.events, opts));
  return { tasks: all.length, p50: percentile(all, 50), p99: percentile(all, 99), max: all.length ? Math.max(...all) : NaN };
}

function replicaRecordCount(stateDir) {
  try {
    return fs.readdirSync(path.join(stateDir, 'local', 'replicas')).filter((f) => f.endsWith('.json')).length;
  } catch {
    return 0;
  }
}

async function runCount(n, log) {
  const stack = await startStack({ ports: await stackPorts('fleet') });
  const { client, close } = await temporalClient(stack.temporalAddress);
  try {
    const workerPid = stack.stack().workerPid;
    // The dev server runs under the stack's guardian process: its CPU is the server's own.
    const guardian = stack.stack().children.find((c) => c.name === 'temporal')?.pid;
    const temporalPid = guardian ? (childPids(guardian)[0] ?? guardian) : undefined;
    const services = Array.from({ length: n }, (_, i) => ({ name: `flt${n}-${i}`, replicas: 1 + (i % 2) }));
    const specs = services.map((s) => specsFor(s.name, s.replicas));
    const replicas = services.reduce((a, s) => a + s.replicas, 0);

    const firstAt = Date.now();
    const firstIds = await deployAll(stack, client, specs.map((s) => s.v1));
    await waitClosed(client, firstIds, { timeoutMs: 30 * 60_000 });
    const firstSeconds = (Date.now() - firstAt) / 1000;
    const first = await outcomes(client, firstIds);
    log(`${n}: first deploys (${replicas} replicas) done in ${firstSeconds.toFixed(1)} s, ${first.succeeded}/${n} succeeded`);

    // The machine is shared: its load when the rollouts start goes with the figures.
    const loadAverage = os.loadavg()[0];
    const sampler = sampleProcess(workerPid);
    const serverSampler = temporalPid ? sampleProcess(temporalPid) : undefined;
    const rolloutAt = Date.now();
    const ids = await deployAll(stack, client, specs.map((s) => s.v2));
    const startSeconds = (Date.now() - rolloutAt) / 1000;
    await waitClosed(client, ids, { timeoutMs: 30 * 60_000 });
    const rolloutSeconds = (Date.now() - rolloutAt) / 1000;
    const usage = sampler.stop();
    const serverUsage = serverSampler?.stop();
    const rolled = await outcomes(client, ids);
    const records = replicaRecordCount(stack.stateDir);

    const rolloutHistories = await fetchHistories(client, ids);
    // The deploy update and the rollout's end run on the service workflow: its tasks from the
    // rollouts' start on count too.
    const serviceHistories = await fetchHistories(client, services.map((s) => serviceWorkflowId(s.name)));
    const wft = latencyFigures([...rolloutHistories, ...serviceHistories], { since: rolloutAt });
    const wftRollouts = latencyFigures(rolloutHistories);
    const wftFirst = latencyFigures(await fetchHistories(client, firstIds));
    const row = {
      rollouts: n,
      replicas,
      firstSeconds,
      firstSucceeded: first.succeeded,
      startSeconds,
      rolloutSeconds,
      succeeded: rolled.succeeded,
      notSucceeded: rolled.other.slice(0, 5),
      records,
      wft,
      wftRollouts,
      wftFirst,
      worker: usage,
      server: serverUsage,
      loadAverage,
    };
    log(
      `${n}: rollouts started in ${startSeconds.toFixed(1)} s, all closed in ${rolloutSeconds.toFixed(1)} s, ${rolled.succeeded}/${n} succeeded; ` +
        `workflow-task schedule-to-start p50 ${wft.p50} ms, p99 ${wft.p99} ms, max ${wft.max} ms over ${wft.tasks} tasks (rollout workflows alone: p99 ${wftRollouts.p99} ms; first deploys: p99 ${wftFirst.p99} ms); ` +
        `worker RSS peak ${usage.rssPeakMiB.toFixed(0)} MiB, CPU ${usage.cpuCorePercent.toFixed(0)}% of a core; ` +
        `Temporal dev server CPU ${serverUsage ? serverUsage.cpuCorePercent.toFixed(0) : '?'}% of a core; ${records} replica records left; machine load ${loadAverage.toFixed(1)} on ${os.cpus().length} cores`,
    );
    return row;
  } finally {
    await close();
    await stack.stop();
  }
}

const passed = (r) => !r.error && r.succeeded === r.rollouts && r.wft.p99 < P99_LIMIT_MS;

async function run({ quick, log }) {
  const counts = quick ? QUICK_COUNTS : COUNTS;
  const rows = [];
  for (const n of counts) {
    let row;
    try {
      row = await runCount(n, log);
    } catch (err) {
      log(`${n}: did not complete: ${err.message.split('\n')[0]}`);
      rows.push({ rollouts: n, error: err.message.split('\n')[0] });
      break;
    }
    rows.push(row);
    // Past the target, a count that misses the limit ends the search: a larger one only queues more.
    if (n >= TARGET_COUNT && !passed(row)) break;
  }
  const largest = Math.max(0, ...rows.filter(passed).map((r) => r.rollouts));
  const at200 = rows.find((r) => r.rollouts === TARGET_COUNT && !r.error);
  const settings = workerSettings();
  const table = [
    markdownTable(
      ['rollouts', 'replicas', 'first deploys s', 'rollouts started in s', 'all rollouts closed in s', 'succeeded', 'WFT schedule-to-start p50 / p99 / max ms', 'WFT p99 rollout workflows alone ms', 'WFT p99 first deploys ms', 'worker RSS peak MiB', 'worker CPU % of a core', 'dev server CPU % of a core', 'machine load (1 min)'],
      rows.map((r) =>
        r.error
          ? [r.rollouts, '-', '-', '-', '-', `failed: ${r.error}`, '-', '-', '-', '-', '-', '-', '-']
          : [r.rollouts, r.replicas, r.firstSeconds.toFixed(1), r.startSeconds.toFixed(1), r.rolloutSeconds.toFixed(1), `${r.succeeded}/${r.rollouts}`, `${r.wft.p50} / ${r.wft.p99} / ${r.wft.max}`, r.wftRollouts.p99, r.wftFirst.p99, r.worker.rssPeakMiB.toFixed(0), r.worker.cpuCorePercent.toFixed(0), r.server ? r.server.cpuCorePercent.toFixed(0) : '-', r.loadAverage.toFixed(1)],
      ),
    ),
    '',
    `Fake replicas (native/fake-replica, ready ${LOAD_SECONDS} s after start), 1 or 2 per service, surge 1, probe every 1 s; a fresh \`rollout dev\` stack per count. ` +
      `Worker settings: ${describeSettings(settings)} (src/worker-concurrency.ts); heartbeats sent every 1 s (src/worker.ts). ` +
      `Dev server: in-memory SQLite, one partition per task queue (src/dev/stack.ts). WFT latency: rollout and service workflows from the rollouts' start; a task moved off the sticky queue counts from its first scheduling. ${os.cpus().length} cores.`,
  ].join('\n');
  const summary = [
    [`fleet: largest concurrent rollout count with WFT schedule-to-start p99 < 1 s (tried ${rows.map((r) => r.rollouts).join(', ')})`, String(largest), quick ? '-' : `≥ ${TARGET_COUNT}`, quick ? undefined : largest >= TARGET_COUNT],
    ...(at200
      ? [
          [`fleet: worker RSS peak with ${TARGET_COUNT} rollouts in flight`, `${at200.worker.rssPeakMiB.toFixed(0)} MiB`, '-', undefined],
          [`fleet: worker CPU with ${TARGET_COUNT} rollouts in flight`, `${at200.worker.cpuCorePercent.toFixed(0)}% of a core`, '-', undefined],
        ]
      : []),
  ];
  return { title: 'Fleet: concurrent rollouts on one worker', table, summary, data: { rows, settings, loadSeconds: LOAD_SECONDS } };
}

module.exports = { run, runCount, specsFor, outcomes };
