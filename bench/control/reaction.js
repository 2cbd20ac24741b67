/**
 * Reaction: from the moment a failure is detectable to 100% of traffic on the old version, as
 * requests through the router see it. Target p99 ≤ 1 s.
 *
 * Each trial deploys a canary (1 replica beside the serving one, 50% of the traffic) of the
 * example model server and fails it one of four ways, while an open-loop client sends a request
 * through the router every 5 ms and records the version each answer names (version-load.js):
 *   deadline  the rollout's `timeout` (12 s) passes while analysis holds it at 50% (its checks
 *             can never pass: min_requests out of reach). Detectable at the rollout's own
 *             deadline, read from its status query (the workflow's start + timeout).
 *   analysis  the canary answers every other request 500 (FAIL_RATE 0.5); analysis every 2 s
 *             fails it (failure_limit 0). Detectable when the failing figures are in hand: the
 *             close of the readTrafficStats activity whose window failed (its event time).
 *   rollback  `rollout rollback <svc>` from the CLI. Detectable when the request reached the
 *             server: the rollout's workflow task that carried the control update was scheduled
 *             (its event time; the CLI's spawn, which includes Node's start, is shown too).
 *   exit      the canary's process exits (EXIT_AFTER_SECONDS) after it became ready and served.
 *             Detectable when it exited: its last log line gives the time (epoch ms).
 * Reaction (requests) = the arrival of the last answer that was not the old version's (the new
 * version, or no answer / a router error) − the detectable instant; 0 when none came after it.
 * Besides: when the workflow decided (the traffic change without the canary scheduled) and when
 * the router had that table (a setTraffic closed, or the activity carrying the change started), from the rollout's history. A trial whose canary
 * answered too few requests before the failure, or that did not roll back for its trigger's
 * reason, fails the part (a measurement of nothing is no figure).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { startStack, runCli, modelServerSpec, writeSpec, temporalClient } = require('./stack');
const { stackPorts } = require('./ports');
const { markdownTable, percentile } = require('./report');
const { startVersionLoad, nowMs } = require('./version-load');
const { activities, acceptedUpdates, trafficLeaving } = require('./rollout-events');

const TARGET_MS = 1000;
const OLD = 'v1';
const INTERVAL_MS = 5;
/** New-version answers a trial needs before the failure (≈ 0.25 s of canary traffic at 50%). */
const MIN_NEW_BEFORE = 25;
/** The load keeps going this long after the rollout ended, so "every answer after" means something. */
const TAIL_MS = 1000;

const canary = (extra = []) => ['steps:', '  - weight: 50', ...extra];
const TRIGGERS = {
  deadline: {
    cause: 'timeout',
    timeout: '12s',
    rollout: [...canary(['  - weight: 100']), 'analysis:', '  interval: 1h', '  max_error_rate: 0.5', '  min_requests: 1000000', '  failure_limit: 0'],
  },
  analysis: {
    cause: 'analysis',
    timeout: '10m',
    env: { FAIL_RATE: '0.5' },
    rollout: [...canary(['  - pause: {}']), 'analysis:', '  interval: 2s', '  max_error_rate: 0.1', '  min_requests: 10', '  failure_limit: 0'],
  },
  rollback: { cause: 'person', timeout: '10m', rollout: canary(['  - pause: {}']) },
  exit: { cause: 'replica_lost', timeout: '10m', env: { EXIT_AFTER_SECONDS: '8' }, rollout: canary(['  - pause: {}']) },
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check, what, timeoutMs) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(20);
  }
}

/** The trigger's spec: the serving version (`label` OLD) without the trigger's faults, a canary with them. */
function specFor(trigger, service, label) {
  const t = TRIGGERS[trigger];
  const env = label === OLD ? {} : (t.env ?? {});
  return writeSpec(modelServerSpec({ name: service, version: label, replicas: 1, loadSeconds: 1, strategy: 'canary', timeout: t.timeout, rolloutYaml: t.rollout, extraEnv: env }));
}

/** The time a replica of `service` v`version` logged as its exit (examples/model-server's EXIT_AFTER_SECONDS line). */
function exitTimeOf(stateDir, service, version) {
  const pattern = new RegExp(`^${service}-v${version}-r\\d+\\.log$`);
  const found = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (pattern.test(entry.name)) {
        const m = /exiting after .* at (\d+) ms/.exec(fs.readFileSync(p, 'utf8'));
        if (m) found.push(Number(m[1]));
      }
    }
  };
  walk(stateDir);
  if (found.length !== 1) throw new Error(`expected one exit line of ${service} v${version} in ${stateDir}, found ${found.length}`);
  return found[0];
}

async function trial({ stack, client, trigger, round, log }) {
  const service = `react-${trigger}`;
  const label = `${trigger}-${round}`;
  const deployed = await stack.cli(['deploy', specFor(trigger, service, label), '-o', 'json']);
  if (deployed.code !== 0) throw new Error(`deploy of ${service} ${label} failed (${deployed.code}): ${deployed.stderr}`);
  const { version, rolloutWorkflowId } = JSON.parse(deployed.stdout);
  const handle = client.workflow.getHandle(rolloutWorkflowId);
  const load = startVersionLoad(`${stack.routerUrl}/${service}`, { intervalMs: INTERVAL_MS, maxMs: 120_000 });
  let samples;
  let detectAt;
  const extra = {};
  let result;
  try {
    // The canary carries traffic: the failure will hit a version that serves.
    await waitFor(() => load.answered().filter((s) => s.version === label).length >= MIN_NEW_BEFORE * 2, `${service} ${label} answering through the router`, 90_000);
    if (trigger === 'deadline') detectAt = (await handle.query('status')).deadline;
    if (trigger === 'rollback') {
      extra.cliSpawnAt = nowMs();
      const rb = await runCli(stack.temporalAddress, ['rollback', service, '--reason', 'bench:control reaction']);
      if (rb.code !== 0) throw new Error(`rollout rollback ${service} failed (${rb.code}): ${rb.stderr}`);
    }
    result = await Promise.race([handle.result(), sleep(120_000).then(() => { throw new Error(`${rolloutWorkflowId} did not end within 120 s`); })]);
    await sleep(TAIL_MS);
  } finally {
    samples = await load.stop();
  }
  if (result.outcome !== 'rolled_back' || result.cause?.kind !== TRIGGERS[trigger].cause) {
    throw new Error(`${rolloutWorkflowId}: expected rolled_back by ${TRIGGERS[trigger].cause}, got ${result.outcome} (${JSON.stringify(result.cause)}): ${result.reason}`);
  }

  const events = (await handle.fetchHistory()).events ?? [];
  const acts = activities(events);
  const leaving = trafficLeaving(acts, version);
  if (leaving?.tableAt === undefined) throw new Error(`${rolloutWorkflowId}: no traffic change took v${version} out of traffic`);
  if (trigger === 'analysis') {
    // The read whose window failed: the last one that closed before the workflow decided.
    const read = acts.filter((a) => a.type === 'readTrafficStats' && a.closedAt !== undefined && a.closedAt <= leaving.scheduledAt).at(-1);
    if (!read) throw new Error(`${rolloutWorkflowId}: no analysis read before the rollback`);
    detectAt = read.closedAt;
    extra.sampleTakenAt = read.startedAt;
  }
  if (trigger === 'rollback') {
    const update = acceptedUpdates(events).find((u) => u.request?.action === 'rollback');
    if (!update) throw new Error(`${rolloutWorkflowId}: no rollback update in its history`);
    detectAt = update.taskScheduledAt;
    extra.acceptedAt = update.acceptedAt;
  }
  if (trigger === 'exit') {
    detectAt = exitTimeOf(stack.stateDir, service, version);
    const watch = acts.find((a) => a.type === 'watchFleet' && a.closed === 'completed' && a.closedAt >= detectAt && (a.result?.lost ?? []).length > 0);
    if (watch) extra.watchSawAt = watch.closedAt;
  }
  if (typeof detectAt !== 'number' || !Number.isFinite(detectAt)) throw new Error(`${rolloutWorkflowId}: no detectable instant found`);

  const answered = samples.filter((s) => !Number.isNaN(s.at)).sort((a, b) => a.at - b.at);
  const newBefore = answered.filter((s) => s.version === label && s.at < detectAt).length;
  if (newBefore < MIN_NEW_BEFORE) throw new Error(`${rolloutWorkflowId}: only ${newBefore} answers of ${label} before the failure`);
  const notOld = answered.filter((s) => s.version !== OLD);
  const lastNotOld = notOld.at(-1);
  const oldAfter = answered.filter((s) => s.at > lastNotOld.at).length;
  if (oldAfter < 50) throw Object.assign(new Error(`${rolloutWorkflowId}: only ${oldAfter} answers after the last non-${OLD} one (the load stopped too soon)`), { samples, acts });
  const after = (t) => (t === undefined ? undefined : t - detectAt);
  const row = {
    trigger,
    round,
    version,
    detectAt,
    reactionMs: Math.max(0, lastNotOld.at - detectAt),
    rawMs: lastNotOld.at - detectAt,
    lastNotOld: { version: lastNotOld.version, status: lastNotOld.status, error: lastNotOld.error },
    decidedMs: after(leaving.scheduledAt),
    tableMs: after(leaving.tableAt),
    errorsAfter: answered.filter((s) => s.at >= detectAt && s.version === null).length,
    newAfter: answered.filter((s) => s.at >= detectAt && s.version === label).length,
    requests: samples.length,
    ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k.replace(/At$/, 'Ms'), after(v)])),
  };
  log(
    `${trigger} #${round}: ${row.reactionMs.toFixed(0)} ms (raw ${row.rawMs.toFixed(0)}; decided ${row.decidedMs.toFixed(0)}, table ${row.tableMs.toFixed(0)} ms` +
      `${row.watchSawMs !== undefined ? `, watch saw it ${row.watchSawMs.toFixed(0)}` : ''}${row.cliSpawnMs !== undefined ? `, CLI spawned ${row.cliSpawnMs.toFixed(0)}` : ''}` +
      `${row.sampleTakenMs !== undefined ? `, sample taken ${row.sampleTakenMs.toFixed(0)}` : ''}); ${row.newAfter} new and ${row.errorsAfter} failed answers after; ${row.requests} requests`,
  );
  // The service learns of the rollout's end from its result; the next deploy waits for that.
  await waitFor(async () => !(await client.workflow.getHandle(`service-${service}`).query('status')).activeRollout, `${service} idle after ${label}`, 60_000);
  return { row, samples, acts };
}

/** The trigger's own instants, after the detectable one (negative: before it). */
const BESIDES = { watchSawMs: 'the watch saw the exit', sampleTakenMs: 'the failing read started', cliSpawnMs: 'the CLI was spawned', acceptedMs: 'the update was accepted' };
function besides(rows) {
  return Object.entries(BESIDES)
    .filter(([k]) => rows.some((r) => typeof r[k] === 'number'))
    .map(([k, what]) => {
      const xs = rows.map((r) => r[k]).filter((x) => typeof x === 'number');
      return `${what}: ${fmt(percentile(xs, 50))} / ${fmt(Math.max(...xs))}`;
    })
    .join('; ');
}

const fmt = (x) => (x === undefined || Number.isNaN(x) ? '-' : `${Math.round(x)}`);
const stats = (xs) => ({ p50: percentile(xs, 50), p99: percentile(xs, 99), max: Math.max(...xs) });

async function run({ quick, log }) {
  const repeats = quick ? 3 : 10;
  const triggers = Object.keys(TRIGGERS);
  const stack = await startStack({ ports: await stackPorts('reaction') });
  const { client, close } = await temporalClient(stack.temporalAddress);
  const rows = [];
  try {
    for (const trigger of triggers) {
      const first = await stack.cli(['deploy', specFor(trigger, `react-${trigger}`, OLD), '--wait', '-o', 'json']);
      if (first.code !== 0) throw new Error(`first deploy of react-${trigger} failed (${first.code}): ${first.stderr}`);
    }
    // Rounds interleave the triggers, so that a noisy minute on the machine spreads over all of them.
    for (let round = 1; round <= repeats; round++) for (const trigger of triggers) rows.push((await trial({ stack, client, trigger, round, log })).row);
  } finally {
    await close();
    await stack.stop();
  }
  const groups = [...triggers.map((t) => [t, rows.filter((r) => r.trigger === t)]), ['all', rows]];
  const table = markdownTable(
    ['trigger', 'n', 'requests p50 ms', 'requests p99 ms', 'requests max ms', 'decided p50 / max ms', 'router table p50 / max ms', 'failed answers after (all trials)', 'besides (p50 / max ms)'],
    groups.map(([t, rs]) => {
      const r = stats(rs.map((x) => x.reactionMs));
      const d = stats(rs.map((x) => x.decidedMs));
      const tb = stats(rs.map((x) => x.tableMs));
      return [t, rs.length, fmt(r.p50), fmt(r.p99), fmt(r.max), `${fmt(d.p50)} / ${fmt(d.max)}`, `${fmt(tb.p50)} / ${fmt(tb.max)}`, rs.reduce((a, x) => a + x.errorsAfter, 0), t === 'all' ? '-' : besides(rs)];
    }),
  ) +
    '\n\nTimes after the detectable instant: deadline = the rollout\'s own deadline (status query); analysis = close of the read whose window failed; ' +
    'rollback = the workflow task carrying the CLI\'s update scheduled; exit = the replica\'s logged exit time. "requests": the last answer not from the old version ' +
    `(the canary's, or a failed one) arrived; "decided": the traffic change without the canary scheduled (a setTraffic, or carried by a start or retirement); "router table": that setTraffic closed, or the activity carrying it started. One request every ${INTERVAL_MS} ms; ` +
    'a 1-replica service with a 1-replica canary at 50%, probe period 1 s.';
  const summary = groups.map(([t, rs]) => {
    const r = stats(rs.map((x) => x.reactionMs));
    return [`reaction, ${t === 'all' ? 'all triggers' : t} (${rs.length} trials): p50 / p99 / max`, `${fmt(r.p50)} / ${fmt(r.p99)} / ${fmt(r.max)} ms`, 'p99 ≤ 1 s', r.p99 <= TARGET_MS];
  });
  return { title: 'Reaction: failure detectable → 100% of traffic on the old version', table, summary, data: { intervalMs: INTERVAL_MS, rows } };
}

// trial, TRIGGERS, specFor and OLD: for a script that looks into one trigger's trials.
module.exports = { run, trial, TRIGGERS, specFor, OLD };
