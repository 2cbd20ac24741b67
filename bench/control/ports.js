/**
 * Each bench:control part's ports: a block of 20 of its own, below the kernel's ephemeral range
 * (no outgoing connection lands there), each checked bindable; BENCH_PORT_BASE moves them all.
 */
'use strict';
const net = require('node:net');

const BASE = Number(process.env.BENCH_PORT_BASE ?? 17_400);
const BLOCKS = { overhead: 0, reaction: 1, history: 2, fleet: 3, horizontal: 4 };

function bindable(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** `count` bindable ports from the part's block (rejects when the block has too few). */
async function portsFor(part, count) {
  const start = BASE + BLOCKS[part] * 20;
  const ports = [];
  for (let p = start; p < start + 20 && ports.length < count; p++) if (await bindable(p)) ports.push(p);
  if (ports.length < count) throw new Error(`${part}: only ${ports.length} of ${count} ports free in ${start}–${start + 19} (set BENCH_PORT_BASE)`);
  return ports;
}

/** The dev stack's ports {temporal, router, admin, metrics} for `part`. */
async function stackPorts(part) {
  const [temporal, router, admin, metrics] = await portsFor(part, 4);
  return { temporal, router, admin, metrics };
}

module.exports = { bindable, portsFor, stackPorts };
