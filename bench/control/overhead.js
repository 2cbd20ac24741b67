/**
 * Overhead: a rolling rollout's wall time ÷ its lower bound. The bound is what the replicas
 * force: ceil(replicas ÷ surge) sequential batches (unavailable 0), each lasting the load time
 * plus half a probe period (the average wait for the probe that sees a replica ready). Measured
 * as the rollout workflow's own start-to-close time; the `deploy --wait` wall time is given too.
 */
'use strict';
const { startStack, modelServerSpec, writeSpec, temporalClient } = require('./stack');
const { stackPorts } = require('./ports');
const { markdownTable } = require('./report');

const CASES = [
  { replicas: 8, surge: 1, loadSeconds: 5, periodSeconds: 1 },
  { replicas: 16, surge: 4, loadSeconds: 5, periodSeconds: 1 },
];
const TARGET = 1.05;

async function run({ quick, log }) {
  const cases = quick ? [{ replicas: 4, surge: 1, loadSeconds: 2, periodSeconds: 1 }, { replicas: 8, surge: 4, loadSeconds: 2, periodSeconds: 1 }] : CASES;
  const repeats = quick ? 1 : 2;
  const stack = await startStack({ ports: await stackPorts('overhead') });
  const { client, close } = await temporalClient(stack.temporalAddress);
  const rows = [];
  try {
    for (const [i, c] of cases.entries()) {
      const name = `ovh${i}`;
      const spec = (version) => writeSpec(modelServerSpec({ name, version, replicas: c.replicas, loadSeconds: c.loadSeconds, surge: c.surge, periodSeconds: c.periodSeconds }));
      const first = await stack.cli(['deploy', spec('v1'), '--wait', '-o', 'json']);
      if (first.code !== 0) throw new Error(`first deploy of ${name} failed (${first.code}): ${first.stderr}`);
      for (let r = 0; r < repeats; r++) {
        const version = r + 2;
        const deploy = await stack.cli(['deploy', spec(`v${version}`), '--wait', '-o', 'json']);
        if (deploy.code !== 0) throw new Error(`rollout of ${name} to v${version} failed (${deploy.code}): ${deploy.stderr}`);
        const id = `rollout-${name}-v${version}`;
        const d = await client.workflow.getHandle(id).describe();
        const seconds = (d.closeTime.getTime() - d.startTime.getTime()) / 1000;
        const batches = Math.ceil(c.replicas / c.surge);
        const bound = batches * (c.loadSeconds + c.periodSeconds / 2);
        const row = { ...c, run: r + 1, batches, boundSeconds: bound, rolloutSeconds: seconds, deployWaitSeconds: deploy.seconds, ratio: seconds / bound, historyEvents: d.historyLength };
        log(`${c.replicas} replicas surge ${c.surge}: ${seconds.toFixed(1)} s / ${bound} s = ${row.ratio.toFixed(3)} (${d.historyLength} events)`);
        rows.push(row);
      }
    }
  } finally {
    await close();
    await stack.stop();
  }
  const table = markdownTable(
    ['replicas', 'surge', 'load s', 'probe period s', 'run', 'lower bound s', 'rollout s', 'deploy --wait s', 'ratio', 'history events'],
    rows.map((r) => [r.replicas, r.surge, r.loadSeconds, r.periodSeconds, r.run, r.boundSeconds, r.rolloutSeconds.toFixed(1), r.deployWaitSeconds.toFixed(1), r.ratio.toFixed(3), r.historyEvents]),
  );
  const summary = cases.map((c) => {
    const mine = rows.filter((r) => r.replicas === c.replicas && r.surge === c.surge);
    const worst = Math.max(...mine.map((r) => r.ratio));
    return [`overhead, ${c.replicas} replicas surge ${c.surge} (${c.loadSeconds} s load), worst of ${mine.length}`, worst.toFixed(3), `≤ ${TARGET}`, worst <= TARGET];
  });
  return { title: 'Overhead: rollout time ÷ lower bound', table, summary, data: { rows } };
}

module.exports = { run };
