#!/usr/bin/env node
/**
 * `npm run bench:control`: the control plane measured, each part against the real embedded
 * stack (`rollout dev`: Temporal dev server, router, worker, local provider; example model
 * server replicas), one after another so that none loads the machine for another:
 *   overhead    rollout wall time ÷ its lower bound (sequential batches × (load + ½ probe period))
 *   reaction    failure detectable → 100% of traffic on the old version, seen through the router
 *   history     history events per rollout against replicas (1, 8, 64, 256); a 1,000-replica rollout
 *   fleet       concurrent rollouts on one worker: workflow-task schedule-to-start p99, RSS, CPU
 *   horizontal  two workers on one task queue; one killed mid-run, the other finishes
 * BENCH_QUICK=1 runs smaller counts in a few minutes; BENCH_PARTS=overhead,history runs some.
 * Results: bench/results/control-<time>.json and .md; a full run of every part also replaces the
 * README's table between its bench:control markers. Exit 1 when a part failed to run (a missed
 * target is a figure, not a failure).
 */
'use strict';
const { machine, writeReport, PART_NAMES } = require('./control/report');

const quick = process.env.BENCH_QUICK === '1';
const chosen = (process.env.BENCH_PARTS ?? PART_NAMES.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
const unknown = chosen.filter((p) => !PART_NAMES.includes(p));
if (unknown.length) {
  console.error(`BENCH_PARTS: unknown part ${unknown.join(', ')} (parts: ${PART_NAMES.join(', ')})`);
  process.exit(2);
}

async function main() {
  const startedAt = Date.now();
  const machineBefore = machine();
  const parts = [];
  let failed = false;
  for (const name of PART_NAMES.filter((p) => chosen.includes(p))) {
    console.error(`bench:control: ${name}${quick ? ' (quick)' : ''}…`);
    try {
      // Each part picks its own ports from a block of its own (bench/control/ports.js).
      const part = await require(`./control/${name}`).run({ quick, log: (line) => console.error(`  [${name}] ${line}`) });
      parts.push({ name, ...part });
    } catch (err) {
      failed = true;
      console.error(`bench:control: ${name} failed: ${err.stack ?? err}`);
      parts.push({ name, title: name, table: `failed: ${String(err.message ?? err).split('\n')[0]}`, summary: [[name, 'failed to run', '-', false]], data: { error: String(err.stack ?? err) } });
    }
  }
  const { md, files } = writeReport({ quick, startedAt, machineBefore, parts });
  console.log(md);
  console.error(`written: ${files.join(', ')}`);
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
