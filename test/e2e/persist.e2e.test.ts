/**
 * `rollout dev --persist`, a durable single box, restarted part by part in the middle of a
 * rolling rollout (slow-loading replicas, so it is mid-way): the whole stack (SIGTERM, and
 * SIGKILL of its process group), the Temporal server alone, the router alone. Each time the
 * rollout finishes, no replica is leaked or doubled, and traffic flows on the router's split.
 * One state dir and one set of ports for the file: every restart comes back on the same ones.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { devArgs, modelServerSpec, replicaProcesses, rolloutCli, ROOT, writeSpec } from '../helpers/dev-stack';
import { startLoad } from '../helpers/load';
import { waitUntil } from '../helpers/wait';

interface Stack {
  dev: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

interface StackFile {
  persist: boolean;
  dbFilename: string;
  children: { name: string; pid: number }[];
}

interface ReplicaRecord {
  replicaId: string;
  service: string;
  version: number;
  pid: number;
  endpoint: string;
}

interface Backend {
  replicaId: string;
  version: number;
  url: string;
  weight: number;
}

let specDir: string;
let stateDir: string;
let args: string[];
let temporalAddress: string;
let routerUrl: string;
let adminUrl: string;
let stack: Stack | undefined;
/** Figures for the report (printed at the end). */
const figures: Record<string, unknown> = {};

beforeAll(async () => {
  specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-persist-spec-'));
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-persist-'));
  const d = await devArgs(['--persist'], stateDir);
  args = d.args;
  temporalAddress = `127.0.0.1:${d.temporalPort}`;
  routerUrl = `http://127.0.0.1:${d.routerPort}`;
  adminUrl = `http://127.0.0.1:${d.adminPort}`;
  stack = await startPersistentStack();
}, 240_000);

afterAll(async () => {
  if (stack) await stopStack(stack, 'SIGTERM');
  // The replicas are left serving by design: the test removes its own (by their recorded groups).
  for (const r of records()) {
    try {
      process.kill(-r.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  process.stdout.write(`persist figures: ${JSON.stringify(figures)}\n`);
  for (const dir of [stateDir, specDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 120_000);

/** `rollout dev --persist` in a process group of its own (so that the whole group can be killed), once "ready:". */
async function startPersistentStack(): Promise<Stack> {
  const dev = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  dev.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  dev.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => dev.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rollout dev --persist not ready in 180 s:\n${out}`)), 180_000);
    dev.stdout?.on('data', () => {
      if (/^ready: /m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`rollout dev --persist exited ${code}:\n${out}`)));
  });
  return { dev, output: () => out, exited };
}

async function stopStack(s: Stack, how: 'SIGTERM' | 'SIGKILL-group'): Promise<void> {
  if (s.dev.exitCode !== null || s.dev.signalCode !== null) return;
  if (how === 'SIGTERM') s.dev.kill('SIGTERM');
  else process.kill(-s.dev.pid!, 'SIGKILL');
  await s.exited;
}

const stackFile = (): StackFile => JSON.parse(fs.readFileSync(path.join(stateDir, 'stack.json'), 'utf8')) as StackFile;
const childPid = (name: string): number => stackFile().children.find((c) => c.name === name)!.pid;
const token = (): string => fs.readFileSync(path.join(stateDir, 'router.token'), 'utf8');

function records(service?: string): ReplicaRecord[] {
  const dir = path.join(stateDir, 'local', 'replicas');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as ReplicaRecord)
    .filter((r) => service === undefined || r.service === service);
}

const alive = (pid: number): boolean => {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

/** The router's backends for a service (its admin API), or undefined when the router does not answer. */
async function backends(service: string): Promise<Backend[] | undefined> {
  try {
    const res = await fetch(`${adminUrl}/v1/services/${service}`, { headers: { authorization: `Bearer ${token()}` } });
    if (res.status !== 200) return undefined;
    return ((await res.json()) as { backends: Backend[] }).backends;
  } catch {
    return undefined;
  }
}

const split = (list: Backend[]): Record<string, number> => {
  const byVersion: Record<string, number> = {};
  for (const b of list) byVersion[b.version] = (byVersion[b.version] ?? 0) + b.weight;
  return byVersion;
};

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON, read field by field
async function status(service: string): Promise<any> {
  const r = await rolloutCli({ temporalAddress }, ['status', service, '-o', 'json'], 60_000);
  if (r.code !== 0) return undefined; // Temporal down for a moment: asked again
  return JSON.parse(r.stdout);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON
async function waitForStatus(service: string, ok: (s: any) => boolean, what: string, timeoutMs = 150_000): Promise<any> {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let last: any;
  await waitUntil(
    async () => {
      last = await status(service);
      return last !== undefined && ok(last);
    },
    `${service}: ${what} (last status: ${JSON.stringify(last)})`,
    timeoutMs,
    300,
  );
  return last;
}

/** 3 replicas, rolling one at a time; v2's replicas take `loadSeconds` to load, so the rollout is mid-way for a while. */
const spec = (name: string, version: string, loadSeconds: number) =>
  modelServerSpec({ name, version, replicas: 3, extraEnv: { LOAD_DELAY_SECONDS: String(loadSeconds) }, timeout: '10m' });

async function deploy(name: string, version: string, loadSeconds: number, wait: boolean): Promise<void> {
  const file = writeSpec(specDir, `${name}-${version}.yaml`, spec(name, version, loadSeconds));
  const r = await rolloutCli({ temporalAddress }, ['deploy', file, ...(wait ? ['--wait'] : [])]);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
}

/** v1 serving, v2 rolling out: returns once one v2 replica took traffic and v1 still has some (mid-way). */
async function midRollout(name: string): Promise<void> {
  await deploy(name, 'v1', 1, true);
  await deploy(name, 'v2', 6, false);
  await waitUntil(
    async () => {
      const list = await backends(name);
      const s = list ? split(list) : {};
      return (s['2'] ?? 0) > 0 && (s['1'] ?? 0) > 0;
    },
    `${name}: the router to send traffic to v1 and v2`,
    150_000,
    100,
  );
}

/** The rollout finished: v2 everywhere, exactly 3 replicas (records, processes, status and router agree). */
async function expectFinished(name: string): Promise<void> {
  const final = await waitForStatus(name, (s) => !s.rollout && s.version === 2, 'the rollout to finish on v2');
  expect(final.lastRollout).toMatchObject({ version: 2, outcome: 'succeeded' });
  expect(final.traffic).toEqual({ '2': 100 });
  const ids = (final.replicas as { id: string }[]).map((r) => r.id).sort();
  expect(ids).toHaveLength(3);
  // No replica leaked (a v1 left running, an orphan) or doubled (two processes for one id).
  await waitUntil(() => records(name).length === 3, `${name}: 3 replica records`, 60_000, 100);
  expect(records(name).map((r) => r.replicaId).sort()).toEqual(ids);
  expect(records(name).every((r) => r.version === 2)).toBe(true);
  await waitUntil(() => new Set(replicaProcesses(name).map((p) => p.replicaId)).size === 3, `${name}: processes of 3 replicas only`, 60_000, 100);
  expect([...new Set(replicaProcesses(name).map((p) => p.replicaId))].sort()).toEqual(ids);
  for (const r of records(name)) expect(alive(r.pid)).toBe(true);
  const leaders = replicaProcesses(name).filter((p) => records(name).some((r) => r.pid === p.pid));
  expect(leaders).toHaveLength(3);
  const list = await backends(name);
  expect(list?.map((b) => b.replicaId).sort()).toEqual(ids);
}

/**
 * The stack is down, the replicas are not: every recorded one runs and answers its probe on its
 * own endpoint (one still loading says 503), and every one the router's split had in rotation
 * serves requests (not through the router: it is down too).
 */
async function replicasAnswerDirectly(name: string, inRotation: Backend[]): Promise<number> {
  const list = records(name);
  expect(list.length).toBeGreaterThanOrEqual(3);
  for (const r of list) {
    expect(alive(r.pid)).toBe(true);
    const res = await fetch(`${r.endpoint}/health`);
    await res.arrayBuffer();
    expect([200, 503]).toContain(res.status);
  }
  for (const b of inRotation.filter((x) => x.weight > 0)) {
    const res = await fetch(`${b.url}/v1/models`);
    expect({ replica: b.replicaId, status: res.status, version: ((await res.json()) as { data: { model_version: string }[] }).data?.[0]?.model_version }).toEqual({ replica: b.replicaId, status: 200, version: `v${b.version}` });
  }
  return list.length;
}

/**
 * Restarts the whole stack, watching the router's admin API meanwhile: the first answer it gives
 * must be the split it had when the stack went down (restored from disk before the worker runs).
 */
async function restartAndCheckSplit(name: string, before: Backend[]): Promise<{ readyMs: number; routerMs: number; firstSeen: Backend[] }> {
  const t0 = Date.now();
  let firstSeen: Backend[] | undefined;
  let routerMs = 0;
  let watching = true;
  const watch = (async () => {
    while (watching && firstSeen === undefined) {
      const list = await backends(name);
      if (list) {
        firstSeen = list;
        routerMs = Date.now() - t0;
      } else await new Promise((r) => setTimeout(r, 20));
    }
  })();
  stack = await startPersistentStack();
  const readyMs = Date.now() - t0;
  await waitUntil(() => firstSeen !== undefined, 'the router to answer', 30_000);
  watching = false;
  await watch;
  expect(firstSeen).toEqual(before);
  return { readyMs, routerMs, firstSeen: firstSeen! };
}

for (const how of ['SIGTERM', 'SIGKILL-group'] as const) {
  test(`${how} of the whole stack mid-rollout: the replicas keep serving while it is down; after the restart the router has its split at once and the rollout finishes`, async () => {
    const name = how === 'SIGTERM' ? 'p-term' : 'p-kill';
    await midRollout(name);
    const children = stackFile().children;
    const t0 = Date.now();
    await stopStack(stack!, how);
    stack = undefined;
    if (how === 'SIGTERM') {
      expect(fs.existsSync(path.join(stateDir, 'stack.json'))).toBe(false);
    } else {
      // The stack's worker, router and Temporal notice the closed pipe and stop by themselves.
      await waitUntil(() => children.every((c) => !alive(c.pid)), 'the killed stack\'s children to stop', 60_000);
    }
    // What the router had when it went down, as it persisted it.
    const before = (JSON.parse(fs.readFileSync(path.join(stateDir, 'routes.json'), 'utf8')) as { services: Record<string, { backends: Backend[] }> }).services[name]!.backends;
    expect(Object.keys(split(before)).sort()).toEqual(['1', '2']);
    await replicasAnswerDirectly(name, before);
    // Every service's replicas (the earlier tests' too) are adopted, none terminated.
    const down = records().length;
    const restarted = await restartAndCheckSplit(name, before);
    expect(stack!.output()).toMatch(new RegExp(`adopting ${down} replica\\(s\\) left serving by the previous run`));
    expect(stack!.output()).not.toMatch(/terminated \d+ replica/);
    // Traffic through the router from the restart on: not one request fails to the end of the rollout.
    const load = startLoad(`${routerUrl}/${name}`, { clients: 3, maxRequests: 1_000_000 });
    await expectFinished(name);
    const resumedMs = Date.now() - t0;
    await load.until((r) => (r.versions.v2 ?? 0) >= 20, 'v2 answering 20 requests');
    const report = await load.stop();
    expect(report.failures).toEqual([]);
    figures[how] = { downToReadyMs: restarted.readyMs, routerAnsweredAfterMs: restarted.routerMs, stopToFinishedMs: resumedMs, requestsAfterRestart: report.requests };
  }, 420_000);
}

test('SIGKILL of the Temporal server alone mid-rollout: the stack restarts it on the same db file, traffic keeps flowing on the split (0 failed), the rollout finishes', async () => {
  const name = 'p-temporal';
  await midRollout(name);
  const guardian = childPid('temporal');
  const server = childrenOf(guardian)[0];
  expect(server).toBeDefined();
  const load = startLoad(`${routerUrl}/${name}`, { clients: 3, maxRequests: 1_000_000 });
  await load.until((r) => r.requests >= 20, 'load through the router');
  const t0 = Date.now();
  process.kill(server!, 'SIGKILL');
  await waitUntil(() => !alive(guardian), 'the guardian to exit with the server', 30_000);
  await waitUntil(() => childPid('temporal') !== guardian && alive(childPid('temporal')), 'Temporal to be restarted', 60_000, 50);
  await waitForStatus(name, () => true, 'Temporal to answer again', 90_000);
  const backMs = Date.now() - t0;
  await expectFinished(name);
  const finishedMs = Date.now() - t0;
  const report = await load.stop();
  expect(report.failures).toEqual([]);
  expect(report.versions.v1).toBeGreaterThan(0);
  expect(report.versions.v2).toBeGreaterThan(0);
  expect(stack!.output()).toMatch(/restarting temporal/);
  expect(stackFile().dbFilename).toBe(path.join(stateDir, 'temporal.db'));
  figures.temporalKill = { answeringAgainAfterMs: backMs, killToFinishedMs: finishedMs, requests: report.requests, failed: report.failures.length };
}, 420_000);

test('SIGKILL of the router under steady load: restarted by the stack with its split from disk; the requests lost in the window are counted', async () => {
  const name = 'p-router';
  await deploy(name, 'v1', 1, true);
  const before = (await backends(name))!;
  expect(before).toHaveLength(3);
  const load = startLoad(`${routerUrl}/${name}`, { clients: 4, maxRequests: 1_000_000 });
  await load.until((r) => r.requests >= 100, '100 requests through the router');
  const router = childPid('router');
  const failedBefore = load.snapshot().failures.length;
  const t0 = Date.now();
  process.kill(router, 'SIGKILL');
  await waitUntil(() => childPid('router') !== router && alive(childPid('router')), 'the router to be restarted', 60_000, 10);
  const newProcessMs = Date.now() - t0;
  const seen = load.snapshot();
  await load.until((r) => r.requests >= seen.requests + 100, '100 requests after the restart', 60_000);
  const restartedMs = Date.now() - t0;
  const report = await load.stop();
  expect(failedBefore).toBe(0);
  expect(await backends(name)).toEqual(before);
  // Generous: what was in flight on the dead process plus what was refused while none listened.
  expect(report.failures.length).toBeLessThan(200);
  figures.routerKill = { lostRequests: report.failures.length, totalRequests: report.requests, newProcessAfterMs: newProcessMs, hundredServedAfterMs: restartedMs, kinds: [...new Set(report.failures.map((f) => f.replace(/\d+/g, 'N').slice(0, 80)))] };
}, 300_000);

test('the state dir of a persistent stack is refused without --persist, and with another --db-filename (exit 2, nothing touched)', async () => {
  await stopStack(stack!, 'SIGTERM');
  stack = undefined;
  const replicasBefore = records().map((r) => r.replicaId).sort();
  const { args: plain } = await devArgs([], stateDir);
  const ephemeral = await runToExit(plain);
  expect(ephemeral.code).toBe(2);
  expect(ephemeral.output).toMatch(/belongs to a persistent stack .*start it with --persist/);
  const other = await runToExit([...args, '--db-filename', path.join(specDir, 'other.db')]);
  expect(other.code).toBe(2);
  expect(other.output).toMatch(/--db-filename .*other\.db: the state dir .* keeps its rollouts in .*temporal\.db/);
  const noPersist = await runToExit([...plain, '--db-filename', path.join(specDir, 'x.db')]);
  expect(noPersist.code).toBe(2);
  expect(noPersist.output).toMatch(/--db-filename: only with --persist/);
  expect(records().map((r) => r.replicaId).sort()).toEqual(replicasBefore);
  for (const r of records()) expect(alive(r.pid)).toBe(true);
}, 120_000);

/** Direct children of a process (from /proc). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function runToExit(cliArgs: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, cliArgs, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    child.on('exit', (code) => resolve({ code, output }));
  });
}
