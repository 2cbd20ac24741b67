/**
 * Ports for servers a test starts itself (the dev stack, a model server, a closed port to be
 * refused on). Two things make a port picked with listen(0) and closed again unsafe to use a
 * moment later: any outgoing connection may take it as its local port (listen(0) picks from the
 * same ephemeral range), and another suite may pick the same one. So ports come from *below* the
 * kernel's ephemeral range, where no outgoing connection ever lands, and each test file starts
 * in a block of its own (chosen from its path); each port is checked bindable before it is
 * handed out. Servers that can bind port 0 themselves (the router) should still do that.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bindable } from '../../src/dev/free-ports';

const ROOT = path.resolve(__dirname, '..', '..');
const LOWEST = 10_000;
const BLOCK = 64;

/** The first port of the kernel's ephemeral range (32768 unless configured otherwise). */
function ephemeralStart(): number {
  try {
    const first = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > LOWEST + BLOCK ? first : 32_768;
  } catch {
    return 32_768;
  }
}

const below = ephemeralStart();

function blockOfThisSuite(): number {
  const suite = path.relative(ROOT, expect.getState().testPath ?? 'unknown');
  const blocks = Math.floor((below - LOWEST) / BLOCK);
  return LOWEST + (crypto.createHash('sha256').update(suite).digest().readUInt32BE(0) % blocks) * BLOCK;
}

let next: number | undefined;

/**
 * TEST_PORT_BASE=N: every port from N to N + 99 instead of the suite's block (several people
 * testing on one machine, each given a range; run the suites one at a time, `--runInBand`).
 */
const given = process.env.TEST_PORT_BASE ? Number(process.env.TEST_PORT_BASE) : undefined;

/** A loopback port no one listens on now, and that no other suite or outgoing connection takes. */
export async function freePort(): Promise<number> {
  if (given !== undefined) {
    if (!Number.isInteger(given) || given < 1024 || given + 100 > 65_536) throw new Error(`TEST_PORT_BASE: expected a port from 1024 to 65436, got ${process.env.TEST_PORT_BASE}`);
    next ??= given;
    for (; next < given + 100; next++) if (await bindable(next)) return next++;
    throw new Error(`no bindable port left in TEST_PORT_BASE's ${given}–${given + 99}`);
  }
  next ??= blockOfThisSuite();
  for (let tried = 0; tried < below - LOWEST; tried++) {
    const port = next;
    next = next + 1 >= below ? LOWEST : next + 1;
    if (await bindable(port)) return port;
  }
  throw new Error(`no bindable port in ${LOWEST}–${below - 1}`);
}
