/**
 * The router replaced under steady plain and streaming load (the example model server behind it):
 *
 *  1. a restart handover (a new process of the same build takes the sockets, routes and counters
 *     over): 0 failed requests, a stream held open across it completes on the old process, route
 *     changes sent during it are all in the new process's table;
 *  2. an upgrade handover to another build of the binary (built here with ROUTER_BUILD_ID, into a
 *     target dir of its own): 0 failed requests, and the new build answers afterwards;
 *  3. a crash (SIGKILL): RouterSupervisor restarts it on the same ports with the split from disk;
 *     the requests lost in that window are counted and printed, not asserted (they depend on
 *     timing); the load recovers and the split is the same.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RouterAdminClient } from '../../src/router/client';
import { startRouter, type RunningRouter } from '../../src/router/server';
import { RouterSupervisor } from '../../src/router/supervisor';
import { startLoad, type LoadReport } from '../helpers/load';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';
import { startUpstream, stopUpstreams, type Upstream } from './upstream';

const ROOT = path.resolve(__dirname, '..', '..');
const TOKEN = 'handover-token';
const UPGRADE_ID = 'handover-test';

let dir: string;
let models: ChildProcess[] = [];
let modelUrls: string[] = [];
let gated: Upstream;
let upgradeBinary: Promise<string>;
const routers: RunningRouter[] = [];

/** Another build of the router: ROUTER_BUILD_ID makes it report `0.1.0+handover-test`. */
function buildOtherRouter(): Promise<string> {
  const targetDir = path.join(ROOT, 'native', 'router', 'target', UPGRADE_ID);
  const binary = path.join(targetDir, 'release', 'rollout-router');
  const args = [path.join(ROOT, 'scripts', 'cargo.js'), 'build', '--release', '--locked', '--quiet', '--manifest-path', path.join(ROOT, 'native', 'router', 'Cargo.toml')];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, CARGO_TARGET_DIR: targetDir, ROUTER_BUILD_ID: UPGRADE_ID }, stdio: ['ignore', 'ignore', 'pipe'] });
    let said = '';
    child.stderr.on('data', (c: Buffer) => (said += c.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(binary) : reject(new Error(`cargo build of the other router build failed (${code}):\n${said}`))));
  });
}

async function startModel(version: string): Promise<string> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(ROOT, 'examples', 'model-server', 'server.js')], {
    env: { PATH: process.env.PATH, PORT: String(port), MODEL_VERSION: version, TOKEN_DELAY_MS: '5' },
    stdio: 'ignore',
  });
  models.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(async () => (await fetch(`${url}/health`).then((r) => r.status, () => 0)) === 200, `model server ${version} on ${port}`);
  return url;
}

beforeAll(async () => {
  // Built while the first test runs: about a minute on a fresh clone, nothing when up to date.
  upgradeBinary = buildOtherRouter();
  upgradeBinary.catch(() => undefined); // surfaced by the upgrade test
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-handover-'));
  modelUrls = [await startModel('v1'), await startModel('v1')];
  gated = await startUpstream('gated');
}, 120_000);

afterAll(async () => {
  for (const r of routers) await r.close();
  for (const m of models) m.kill('SIGTERM');
  models = [];
  await stopUpstreams();
  await upgradeBinary.catch(() => undefined);
}, 900_000);

const backends = (weightOfFirst: number) => [
  { replicaId: 'm1', version: 1, url: modelUrls[0], weight: weightOfFirst },
  { replicaId: 'm2', version: 1, url: modelUrls[1], weight: 1 },
];

async function routerForTest(name: string): Promise<{ router: RunningRouter; admin: RouterAdminClient; statePath: string }> {
  const statePath = path.join(dir, name, 'routes.json');
  const router = await startRouter({
    trafficPort: await freePort(),
    adminPort: await freePort(),
    token: TOKEN,
    statePath,
    handoverSocket: path.join(dir, name, 'router.sock'),
  });
  routers.push(router);
  const admin = new RouterAdminClient(router.adminUrl, TOKEN);
  await admin.setBackends('svc', backends(1));
  await admin.setBackends('gated', [{ replicaId: 'g1', version: 1, url: gated.url, weight: 1 }]);
  return { router, admin, statePath };
}

async function health(router: RunningRouter): Promise<{ build: string; pid: number }> {
  return (await (await fetch(`${router.adminUrl}/healthz`)).json()) as { build: string; pid: number };
}

/** A stream held open by the gated upstream: its first event is in, the rest waits for release(). */
async function openGatedStream(router: RunningRouter): Promise<{ text: Promise<string> }> {
  const res = await fetch(`${router.trafficUrl}/gated/gated-sse`);
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  const first = await reader.read();
  let text = Buffer.from(first.value ?? new Uint8Array()).toString();
  // In an object: an async function returning the promise itself would wait for it.
  const rest = (async () => {
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) return text;
      text += Buffer.from(chunk.value).toString();
    }
  })();
  return { text: rest };
}

function summary(report: LoadReport): string {
  return `${report.requests} requests (${report.streams} streams), ${report.failures.length} failed`;
}

test('restart handover under plain and streaming load: 0 failed requests, a stream in flight finishes on the old process, no route change lost', async () => {
  const { router: old, admin } = await routerForTest('restart');
  const load = startLoad(`${old.trafficUrl}/svc`, { clients: 4 });
  await load.until((r) => r.requests >= 100 && r.streams >= 30, 'load through the old router');
  const held = await openGatedStream(old);
  const before = await admin.countersByVersion('svc');

  // Route changes keep coming while the handover runs; each PUT must land in the table that serves.
  let handing = true;
  let lastWeight = 1;
  const puts = (async () => {
    for (let weight = 2; handing; weight++) {
      await admin.setBackends('svc', backends(weight));
      lastWeight = weight;
    }
  })();
  const next = await old.handover();
  routers.push(next);
  handing = false;
  await puts;

  expect(next.pid).not.toBe(old.pid);
  expect(next.trafficUrl).toBe(old.trafficUrl);
  expect(next.adminUrl).toBe(old.adminUrl);
  expect((await health(next)).pid).toBe(next.pid); // the admin port is the new process's now
  // The old process still streams: the new one counts that stream in flight for the replica
  // (a drain would wait for it), and the old one cannot exit before it ends.
  await waitUntil(async () => (await admin.inflight('gated', 'g1')) === 1, 'the new router to count the old one\'s stream in flight');
  const mid = await load.until((r) => r.requests >= 200, 'load through the new router').then(() => load.snapshot());
  expect(mid.failures).toEqual([]);
  gated.release();
  expect((await held.text).match(/^data:/gm)?.length).toBe(5);
  expect(await old.exited).toEqual({ code: 0, signal: null });
  await waitUntil(async () => (await admin.inflight('gated', 'g1')) === 0, 'the old router\'s stream to be gone from the count');

  const total = load.snapshot().requests;
  await load.until((r) => r.requests >= total + 100, 'load after the old router exited');
  const report = await load.stop();
  console.log(`restart handover: ${summary(report)}; ${lastWeight - 1} route changes during it`);
  expect(report.failures).toEqual([]);
  expect(report.streams).toBeGreaterThan(0);

  // The last route change is what serves; the counters went on from the old process's.
  const view = await admin.getService('svc');
  expect(view?.backends.map((b) => b.weight)).toEqual([lastWeight, 1]);
  const after = await admin.countersByVersion('svc');
  expect(after['1'].requests).toBeGreaterThan(before['1'].requests);
  await next.close();
}, 300_000);

test('upgrade handover to another build of the binary under load, through the supervisor: 0 failed requests, the new build serves', async () => {
  const binary = await upgradeBinary;
  const statePath = path.join(dir, 'upgrade', 'routes.json');
  const supervisor = new RouterSupervisor({
    env: {
      ROUTER_TOKEN: TOKEN,
      ROUTER_TRAFFIC_PORT: String(await freePort()),
      ROUTER_ADMIN_PORT: String(await freePort()),
      ROUTER_STATE_PATH: statePath,
      ROUTER_HANDOVER_SOCKET: path.join(dir, 'upgrade', 'router.sock'),
    },
  });
  try {
    const old = await supervisor.start();
    const admin = new RouterAdminClient(old.adminUrl, TOKEN);
    await admin.setBackends('svc', backends(1));
    expect((await health(old)).build).toBe('0.1.0');
    const load = startLoad(`${old.trafficUrl}/svc`, { clients: 4 });
    await load.until((r) => r.requests >= 100 && r.streams >= 30, 'load through the old build');
    const next = await supervisor.handover({ binary });
    expect(next.build).toBe(`0.1.0+${UPGRADE_ID}`);
    expect(supervisor.pid).toBe(next.pid);
    expect(await old.exited).toEqual({ code: 0, signal: null });
    const total = load.snapshot().requests;
    await load.until((r) => r.requests >= total + 100, 'load through the new build');
    const report = await load.stop();
    console.log(`upgrade handover (0.1.0 → ${next.build}): ${summary(report)}`);
    expect(report.failures).toEqual([]);
    expect(report.streams).toBeGreaterThan(0);
    expect(supervisor.restarts).toBe(0); // the old process's exit was expected

    const res = await fetch(`${next.trafficUrl}/svc/v1/completions`, { method: 'POST', body: '{"prompt":"hi"}', headers: { 'content-type': 'application/json' } });
    await res.text();
    expect(res.headers.get('x-rollout-router')).toBe(`0.1.0+${UPGRADE_ID}`);
    expect((await health(next)).build).toBe(`0.1.0+${UPGRADE_ID}`);
    expect((await admin.getService('svc'))?.backends).toEqual(backends(1));
    expect(JSON.parse(fs.readFileSync(statePath, 'utf8')).services.svc.backends).toEqual(backends(1));

    // And back to the default build (what `rollout dev` does on SIGUSR2).
    const back = await supervisor.handover();
    expect(back.build).toBe('0.1.0');
    expect(await next.exited).toEqual({ code: 0, signal: null });
  } finally {
    await supervisor.stop();
  }
}, 900_000);

test('SIGKILL: the supervisor restarts the router on the same ports with the split from disk; the requests lost in that window are reported', async () => {
  const [trafficPort, adminPort] = [await freePort(), await freePort()];
  const statePath = path.join(dir, 'crash', 'routes.json');
  const starts: Array<{ pid: number; why: string; at: number }> = [];
  const supervisor = new RouterSupervisor({
    env: {
      ROUTER_TOKEN: TOKEN,
      ROUTER_TRAFFIC_PORT: String(trafficPort),
      ROUTER_ADMIN_PORT: String(adminPort),
      ROUTER_STATE_PATH: statePath,
      ROUTER_HANDOVER_SOCKET: path.join(dir, 'crash', 'router.sock'),
    },
    onStart: (r, why) => starts.push({ pid: r.pid, why, at: Date.now() }),
  });
  try {
    const first = await supervisor.start();
    const admin = new RouterAdminClient(first.adminUrl, TOKEN);
    await admin.setBackends('svc', backends(3));
    const split = (await admin.getService('svc'))?.backends;
    const load = startLoad(`${first.trafficUrl}/svc`, { clients: 4 });
    await load.until((r) => r.requests >= 100 && r.streams >= 30, 'load through the router');
    const atKill = load.snapshot();
    const killedAt = Date.now();
    process.kill(first.pid, 'SIGKILL');
    await waitUntil(() => starts.some((s) => s.why === 'restart'), 'the supervisor to restart the router');
    const restarted = starts.find((s) => s.why === 'restart')!;
    await load.until((r) => r.requests >= atKill.requests + 200, 'load through the restarted router');
    const report = await load.stop();
    const lost = report.failures.length - atKill.failures.length;
    console.log(
      `router SIGKILL: restarted in ${restarted.at - killedAt} ms (pid ${first.pid} → ${restarted.pid}); ${summary(report)}; ` +
        `lost in the window: ${lost}${lost ? ` (${[...new Set(report.failures.map((f) => f.replace(/:.*$/, '').replace(/\d+/g, 'N')))].join('; ')})` : ''}`,
    );
    expect(atKill.failures).toEqual([]);
    expect(supervisor.pid).toBe(restarted.pid);
    expect((await admin.getService('svc'))?.backends).toEqual(split);
    // Recovered: every request after the restart answers.
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${first.trafficUrl}/svc/v1/completions`, { method: 'POST', body: '{"prompt":"hi"}', headers: { 'content-type': 'application/json' } });
      await res.text();
      expect(res.status).toBe(200);
    }
  } finally {
    await supervisor.stop();
  }
}, 300_000);
