/**
 * History size: events per rollout (every run, when it continued as new) against its replica
 * count, for a rolling rollout (surge 1) of fake replicas that load at once; target ≤ 20 + 12
 * per replica. Then a 1,000-replica rollout (surge 25%): it must complete, continuing as new
 * before Temporal suggests it (the dev server suggests at 4,096 events), so every run stays below that.
 */
'use strict';
const { startStack, modelServerSpec, writeSpec, temporalClient } = require('./stack');
const { stackPorts } = require('./ports');
const { markdownTable } = require('./report');

const SUGGESTED_AT = 4096;
const bound = (n) => 20 + 12 * n;

/** Every run of the workflow `id` (a rollout that continued as new has several): their history lengths. */
async function runsOf(client, id) {
  const runs = [];
  for await (const w of client.workflow.list({ query: `WorkflowId = "${id}"` })) runs.push({ runId: w.runId, status: w.status.name, historyLength: w.historyLength });
  return runs;
}

async function rollout(stack, client, { name, replicas, surge, log }) {
  const spec = (version) => writeSpec(modelServerSpec({ name, version, replicas, loadSeconds: 0, surge, periodSeconds: 1, fake: true, timeout: '60m' }));
  const timeoutMs = Math.max(600_000, replicas * 5_000);
  const first = await stack.cli(['deploy', spec('v1'), '--wait', '-o', 'json'], { timeoutMs });
  if (first.code !== 0) throw new Error(`first deploy of ${name} failed (${first.code}): ${first.stderr.slice(-2000)}`);
  const started = Date.now();
  const second = await stack.cli(['deploy', spec('v2'), '--wait', '-o', 'json'], { timeoutMs });
  if (second.code !== 0) throw new Error(`rollout of ${name} failed (${second.code}): ${second.stderr.slice(-2000)}`);
  const seconds = (Date.now() - started) / 1000;
  const rolloutRuns = await runsOf(client, `rollout-${name}-v2`);
  const firstRuns = await runsOf(client, `rollout-${name}-v1`);
  const events = rolloutRuns.reduce((a, r) => a + r.historyLength, 0);
  const row = { replicas, surge, events, perReplica: (events - 20) / replicas, bound: bound(replicas), runs: rolloutRuns.length, largestRun: Math.max(...rolloutRuns.map((r) => r.historyLength)), firstDeployRuns: firstRuns.length, firstDeployLargestRun: Math.max(...firstRuns.map((r) => r.historyLength)), seconds };
  log(`${replicas} replicas: ${events} events in ${row.runs} run(s) (bound ${row.bound}), largest run ${row.largestRun}; first deploy largest run ${row.firstDeployLargestRun}; ${seconds.toFixed(0)} s`);
  return row;
}

async function run({ quick, log }) {
  const counts = quick ? [1, 8, 32] : [1, 8, 64, 256];
  const stack = await startStack({ ports: await stackPorts('history') });
  const { client, close } = await temporalClient(stack.temporalAddress);
  const rows = [];
  let big;
  try {
    for (const n of counts) rows.push(await rollout(stack, client, { name: `hist${n}`, replicas: n, surge: 1, log }));
    if (!quick) big = await rollout(stack, client, { name: 'hist1000', replicas: 1000, surge: '25%', log });
  } finally {
    await close();
    await stack.stop();
  }
  const all = big ? [...rows, big] : rows;
  const table = markdownTable(
    ['replicas', 'surge', 'rollout events (all runs)', 'bound 20 + 12/replica', 'events per replica (above 20)', 'runs', 'largest run', 'first deploy: runs / largest', 'rollout s'],
    all.map((r) => [r.replicas, r.surge, r.events, r.bound, r.perReplica.toFixed(1), r.runs, r.largestRun, `${r.firstDeployRuns} / ${r.firstDeployLargestRun}`, r.seconds.toFixed(0)]),
  );
  const summary = rows.map((r) => [`history events, ${r.replicas}-replica rolling rollout`, String(r.events), `≤ ${r.bound}`, r.events <= r.bound]);
  if (big) {
    const largest = Math.max(big.largestRun, big.firstDeployLargestRun);
    summary.push(['1,000-replica rollout: runs, largest run (events)', `${big.runs} runs, ${big.largestRun} (first deploy ${big.firstDeployRuns} runs, ${big.firstDeployLargestRun})`, `completes, every run < ${SUGGESTED_AT}`, largest < SUGGESTED_AT]);
  } else summary.push(['1,000-replica rollout', 'not run (BENCH_QUICK)', '-', undefined]);
  return { title: 'History size: events per rollout', table, summary, data: { rows: all } };
}

module.exports = { run };
