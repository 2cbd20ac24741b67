'use strict';
/**
 * An open-loop load at a fixed rate with sub-millisecond latency figures (autocannon reports
 * whole milliseconds, too coarse for "added p99 under 1 ms"). Each request is timed from the
 * moment it was due, not from when it was sent, so a stall counts against the target
 * (no coordinated omission).
 *
 * bench/router.js runs this file as a child process of its own (`node bench/fixed-rate.js`,
 * driven over IPC), so the load is not generated in a process that also does other work, and
 * one warmed-up client (JIT, kept-alive connections) measures every target the same way.
 */
const { Pool } = require('undici');
const { setTimeout: sleep } = require('node:timers/promises');

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const pools = new Map();
function poolFor(origin, connections) {
  const key = `${origin} ${connections}`;
  let pool = pools.get(key);
  if (!pool) pools.set(key, (pool = new Pool(origin, { connections })));
  return pool;
}

/** One slice of load; the raw latencies (ms), so slices of several rounds can be pooled. */
async function fixedRateSamples({ url, body, rate, seconds, connections = 16 }) {
  const target = new URL(url);
  const pool = poolFor(target.origin, connections);
  const latencies = [];
  let errors = 0;
  const pending = [];
  const interval = 1000 / rate;
  const total = Math.round(rate * seconds);
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait >= 1) await sleep(Math.floor(wait));
    // Timed from when it was due (a late send counts against it), or from when it was sent if the timer let it go early.
    const from = Math.min(due, performance.now());
    pending.push(
      pool
        .request({ path: target.pathname + target.search, method: 'POST', headers: { 'content-type': 'application/json' }, body })
        .then(async (res) => {
          await res.body.dump();
          if (res.statusCode !== 200) errors += 1;
          latencies.push(performance.now() - from);
        })
        .catch(() => {
          errors += 1;
        }),
    );
  }
  await Promise.all(pending);
  return { latencies, errors, elapsedS: (performance.now() - start) / 1000 };
}

/** Percentiles of pooled slices. */
function summarize(slices) {
  const latencies = slices.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const elapsed = slices.reduce((a, s) => a + s.elapsedS, 0);
  const round = (x) => (x === null ? null : Math.round(x * 100) / 100);
  return {
    requestsPerSecond: Math.round(latencies.length / elapsed),
    p50ms: round(percentile(latencies, 0.5)),
    p99ms: round(percentile(latencies, 0.99)),
    errors: slices.reduce((a, s) => a + s.errors, 0),
  };
}

async function fixedRate(opts) {
  return summarize([await fixedRateSamples(opts)]);
}

module.exports = { fixedRate, fixedRateSamples, summarize };

// As a child process: each IPC message { id, ...options } is answered with { id, result } (or { id, error }).
if (require.main === module && process.send) {
  process.on('message', (msg) => {
    fixedRateSamples(msg).then(
      (result) => process.send({ id: msg.id, result }),
      (err) => process.send({ id: msg.id, error: String(err?.stack ?? err) }),
    );
  });
  process.on('disconnect', () => {
    Promise.all([...pools.values()].map((p) => p.close())).finally(() => process.exit(0));
  });
}
