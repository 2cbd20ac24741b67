/**
 * Horizontal: two workers on one task queue against one Temporal (the `rollout dev` stack's
 * worker and a second `rollout worker` on the same machine and state dir). N services are
 * rolled out at once twice: once with both workers up (who ran what is counted from the
 * histories: the `identity` of each completed activity and started workflow task), and once with
 * the second worker SIGKILLed while it runs an activity of one of them. The figures: both workers
 * take work; every rollout of the killed run still succeeds, on the survivor; every replica is
 * accounted for afterwards (records against the processes running); the time to finish against
 * the run without a kill.
 */
'use strict';
const { startStack, modelServerSpec, writeSpec, temporalClient } = require('./stack');
const { stackPorts } = require('./ports');
const { markdownTable } = require('./report');
const { deployMany, waitClosed, mapBounded } = require('./deploy-many');
const { fetchHistories, activitiesByIdentity, workflowTasksByIdentity, addCounts } = require('./task-latency');
const { startSecondWorker } = require('./second-worker');
const { census } = require('./replica-census');

const PREFIX = 'hz';
/** Long enough a rollout that a kill lands in the middle of it. */
const LOAD_SECONDS = 2;

function specPath(name, version, replicas) {
  return writeSpec(modelServerSpec({ name, version: `v${version}`, replicas, loadSeconds: LOAD_SECONDS, surge: 1, periodSeconds: 1, fake: true }));
}

async function pollUntil(what, check, { timeoutMs = 180_000, everyMs = 250 } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A rollout of `ids` with an activity running on worker `identity` right now, or undefined. */
async function runningOn(client, ids, identity) {
  const found = await mapBounded(ids, 10, async (id) => {
    const d = await client.workflow.getHandle(id).describe();
    return (d.raw.pendingActivities ?? []).some((a) => a.lastWorkerIdentity === identity && a.state === 2 /* STARTED */) ? id : undefined;
  });
  return found.find(Boolean);
}

async function outcomesOf(client, ids) {
  return mapBounded(ids, 20, async (id) => {
    try {
      return (await client.workflow.getHandle(id).result()).outcome;
    } catch (err) {
      return `error: ${err.message}`;
    }
  });
}

/** Who ran the work of `ids`: activities completed and workflow tasks started, per identity. */
async function shares(client, ids) {
  const histories = await fetchHistories(client, ids);
  const activities = {};
  const workflowTasks = {};
  for (const h of histories) {
    addCounts(activities, activitiesByIdentity(h.events));
    addCounts(workflowTasks, workflowTasksByIdentity(h.events));
  }
  return { activities, workflowTasks };
}

/** Waits until the replicas of our services are exactly the live records of `version`, `perService` each. */
async function settled(stateDir, names, version, perService) {
  const ours = (s) => s.startsWith(`${PREFIX}-`);
  let last;
  try {
    await pollUntil(
      'every replica accounted for',
      () => {
        last = census(stateDir, ours);
        const right = names.every((n) => {
          const rs = last.services[n] ?? [];
          return rs.length === perService && rs.every((r) => r.alive && r.version === version);
        });
        return right && last.unrecorded.length === 0 && last.dead.length === 0 && last.groups === names.length * perService;
      },
      { timeoutMs: 120_000, everyMs: 500 },
    );
    return { ok: true, census: last };
  } catch {
    return { ok: false, census: last };
  }
}

async function run({ quick, log }) {
  const services = quick ? 8 : 24;
  const perService = 3;
  const names = Array.from({ length: services }, (_, i) => `${PREFIX}-${i}`);
  const stack = await startStack({ ports: await stackPorts('horizontal') });
  const { client, close } = await temporalClient(stack.temporalAddress);
  let second;
  const rows = [];
  const data = {};
  try {
    const firstIdentity = `${stack.stack().workerPid}@${require('node:os').hostname()}`;
    second = await startSecondWorker(stack);
    log(`workers: ${firstIdentity} (the stack's) and ${second.identity} (second)`);

    const deployVersion = async (version) => {
      const at = Date.now();
      const ids = await deployMany(client, names.map((n) => specPath(n, version, perService)), { concurrency: 25 });
      return { ids, at };
    };
    const finish = async (label, { ids, at }, extra = {}) => {
      await waitClosed(client, ids, { timeoutMs: 15 * 60_000 });
      const seconds = (Date.now() - at) / 1000;
      const outcomes = await outcomesOf(client, ids);
      const succeeded = outcomes.filter((o) => o === 'succeeded').length;
      const who = await shares(client, ids);
      const accounted = await settled(stack.stateDir, names, Number(label.replace(/\D/g, '')) || 0, perService);
      const row = { label, rollouts: ids.length, seconds, succeeded, ...who, accounted: accounted.ok, census: accounted.census, ...extra };
      log(`${label}: ${succeeded}/${ids.length} succeeded in ${seconds.toFixed(1)} s; activities by worker ${JSON.stringify(who.activities)}; replicas accounted for: ${accounted.ok} (${accounted.census.groups} replica process groups, ${accounted.census.records} records, ${accounted.census.unrecorded.length} unrecorded)`);
      rows.push(row);
      return row;
    };

    await finish('v1', await deployVersion(1), { phase: 'first deploy, both workers' });
    await finish('v2', await deployVersion(2), { phase: 'rollout, both workers' });

    const v3 = await deployVersion(3);
    const victim = await pollUntil('an activity of the second worker', () => runningOn(client, v3.ids, second.identity), { everyMs: 100 });
    const killedAfter = (Date.now() - v3.at) / 1000;
    await second.kill();
    log(`SIGKILLed the second worker (pid ${second.pid}) ${killedAfter.toFixed(1)} s into the v3 rollouts, while it ran an activity of ${victim}`);
    await finish('v3', v3, { phase: 'rollout, second worker SIGKILLed mid-run', killedAfterSeconds: killedAfter, victim });
    data.identities = { first: firstIdentity, second: second.identity };
  } finally {
    await second?.stop().catch(() => undefined);
    await close();
    await stack.stop();
  }
  const [v1, v2, v3] = rows;
  const bothWorked = [v1, v2].every((r) => Object.keys(r.activities).length >= 2);
  const table = [
    markdownTable(
      ['run', 'rollouts', 'succeeded', 'seconds to finish', 'activities completed, by worker', 'workflow tasks, by worker', 'replicas accounted for'],
      rows.map((r) => [
        `${r.label}: ${r.phase}`,
        r.rollouts,
        `${r.succeeded}/${r.rollouts}`,
        r.seconds.toFixed(1),
        Object.entries(r.activities).map(([k, v]) => `${k === data.identities.first ? 'stack' : k === data.identities.second ? 'second' : k}: ${v}`).join(', '),
        Object.entries(r.workflowTasks).map(([k, v]) => `${k === data.identities.first ? 'stack' : k === data.identities.second ? 'second' : k}: ${v}`).join(', '),
        r.accounted ? `yes (${r.census.groups} process groups = records)` : `no: ${r.census.groups} process groups, ${r.census.records} records, ${r.census.unrecorded.length} unrecorded, ${r.census.dead.length} dead`,
      ]),
    ),
    '',
    `${services} services × ${perService} fake replicas (ready ${LOAD_SECONDS} s after start), surge 1, probe every 1 s; both workers on one machine and one state dir. ` +
      `v3's second worker was killed ${v3.killedAfterSeconds.toFixed(1)} s in, while it ran an activity.`,
  ].join('\n');
  const summary = [
    ['horizontal: both workers took work (activities completed by each)', bothWorked ? 'yes' : 'no', 'yes', bothWorked],
    ['horizontal: rollouts succeeded with one worker SIGKILLed mid-run', `${v3.succeeded}/${v3.rollouts}`, `${v3.rollouts}/${v3.rollouts}`, v3.succeeded === v3.rollouts],
    ['horizontal: every replica accounted for after the kill', v3.accounted ? 'yes' : 'no', 'yes', v3.accounted],
    ['horizontal: time to finish with the kill ÷ without', (v3.seconds / v2.seconds).toFixed(2), '-', undefined],
  ];
  return { title: 'Horizontal: two workers, one killed mid-run', table, summary, data: { ...data, rows } };
}

module.exports = { run };
