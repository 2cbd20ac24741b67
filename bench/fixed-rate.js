'use strict';
/**
 * An open-loop load at a fixed rate with sub-millisecond latency figures (autocannon reports
 * whole milliseconds, too coarse for "added p99 under 1 ms"). Each request is timed from the
 * moment it was due, not from when it was sent, so a stall counts against the target
 * (no coordinated omission).
 */
const { Pool } = require('undici');
const { setTimeout: sleep } = require('node:timers/promises');

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function fixedRate({ url, body, rate, seconds, connections = 16 }) {
  const target = new URL(url);
  const pool = new Pool(target.origin, { connections });
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
  const elapsed = (performance.now() - start) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  const round = (x) => (x === null ? null : Math.round(x * 100) / 100);
  return {
    requestsPerSecond: Math.round(latencies.length / elapsed),
    p50ms: round(percentile(latencies, 0.5)),
    p99ms: round(percentile(latencies, 0.99)),
    errors,
  };
}

module.exports = { fixedRate };
