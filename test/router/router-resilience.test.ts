/**
 * The router when things change or go wrong: route replacement under load, clients that leave,
 * replicas that break connections, a router that stops with requests in flight, bad state.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RouterAdminClient, RouterRequestError, RouterUnavailableError } from '../../src/router/client';
import { startRouter, type RunningRouter } from '../../src/router/server';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';
import { startUpstream, stopUpstreams, upstream } from './upstream';

const TOKEN = 'test-token';
let router: RunningRouter;
let admin: RouterAdminClient;

beforeEach(async () => {
  router = await startRouter({ trafficPort: 0, adminPort: 0, token: TOKEN });
  admin = new RouterAdminClient(router.adminUrl, TOKEN);
});

afterEach(async () => {
  await router.close();
  await stopUpstreams();
});

async function get(p: string, init?: RequestInit) {
  const res = await fetch(router.trafficUrl + p, init);
  return { status: res.status, replica: res.headers.get('x-rollout-replica'), body: await res.text() };
}

test('replacing the backends is atomic: no failed request, and every request after the PUT goes to the new set', async () => {
  const [a, b] = [await upstream('a'), await upstream('b')];
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: a, weight: 1 }]);
  const slowOnA = get('/svc/slow'); // in flight across the switch: keeps its backend
  await waitUntil(async () => (await admin.inflight('svc', 'a')) === 1, 'the slow request on a');
  let stop = false;
  const before: Array<string | null> = [];
  const load = (async () => {
    while (!stop) {
      const r = await get('/svc/x');
      expect(r.status).toBe(200);
      before.push(r.replica);
    }
  })();
  await waitUntil(async () => before.length >= 5, 'load on a');
  await admin.setBackends('svc', [{ replicaId: 'b', version: 2, url: b, weight: 1 }]);
  const after = await Promise.all(Array.from({ length: 50 }, () => get('/svc/x')));
  stop = true;
  await load;
  expect(after.every((r) => r.status === 200 && r.replica === 'b')).toBe(true);
  expect(before.every((r) => r === 'a' || r === 'b')).toBe(true);
  expect(before).toContain('a');
  const slow = await slowOnA;
  expect({ status: slow.status, replica: slow.replica }).toEqual({ status: 200, replica: 'a' });
});

test('a client that disconnects mid-stream aborts the upstream request and frees its in-flight slot', async () => {
  const up = await startUpstream('a');
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: up.url, weight: 1 }]);
  const { hostname, port } = new URL(router.trafficUrl);
  await new Promise<void>((resolve, reject) => {
    const req = http.get({ hostname, port, path: '/svc/endless' }, (res) => {
      res.once('data', () => {
        req.destroy(); // the user closed the chat window
        resolve();
      });
    });
    req.on('error', () => undefined);
    setTimeout(() => reject(new Error('no first chunk')), 20_000);
  });
  const closed = await Promise.race([up.endlessClosed.then(() => true), new Promise((r) => setTimeout(() => r(false), 20_000))]);
  expect(closed).toBe(true);
  expect(await admin.waitForDrain('svc', 'a', 20_000, 20)).toEqual({ drained: true, inflight: 0 });
});

test('a client that leaves before any answer aborts the upstream request and frees its in-flight slot', async () => {
  const up = await startUpstream('a');
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: up.url, weight: 1 }]);
  const { hostname, port } = new URL(router.trafficUrl);
  const req = http.get({ hostname, port, path: '/svc/hang' });
  req.on('error', () => undefined);
  await waitUntil(async () => (await admin.inflight('svc', 'a')) === 1, 'the request to reach the replica');
  req.destroy(); // the caller gave up while the model was still thinking
  const closed = await Promise.race([up.endlessClosed.then(() => true), new Promise((r) => setTimeout(() => r(false), 20_000))]);
  expect(closed).toBe(true);
  expect(await admin.waitForDrain('svc', 'a', 20_000, 20)).toEqual({ drained: true, inflight: 0 });
  // Not an answer: neither a request nor a 5xx in the statistics.
  expect((await admin.getService('svc'))?.stats['1']).toMatchObject({ requests: 0, errors5xx: 0, connectErrors: 0, inflight: 0 });
});

test('a replica that breaks the connection before answering: the request (body included) is retried on another', async () => {
  const flaky = await startUpstream('flaky', { resetEverything: true });
  const live = await startUpstream('live');
  await admin.setBackends('svc', [
    { replicaId: 'flaky', version: 1, url: flaky.url, weight: 1 },
    { replicaId: 'live', version: 1, url: live.url, weight: 1 },
  ]);
  for (let i = 0; i < 4; i++) {
    const r = await get('/svc/v1/completions', { method: 'POST', body: '{"prompt":"again"}' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ name: 'live', url: '/v1/completions', body: '{"prompt":"again"}' });
  }
  expect(flaky.seen.length).toBeGreaterThan(0);
});

test('every replica refusing connections: 502 with a clear message, not a hang', async () => {
  await admin.setBackends('svc', [
    { replicaId: 'x', version: 1, url: `http://127.0.0.1:${await freePort()}`, weight: 1 },
    { replicaId: 'y', version: 1, url: `http://127.0.0.1:${await freePort()}`, weight: 1 },
  ]);
  const r = await get('/svc/x');
  expect(r.status).toBe(502);
  expect(JSON.parse(r.body).error).toMatch(/no replica of svc accepted the connection \(tried 2\)/);
});

test('weight 0 is out of rotation; only weight-0 backends is 503', async () => {
  await admin.setBackends('svc', [
    { replicaId: 'a', version: 1, url: await upstream('a'), weight: 0 },
    { replicaId: 'b', version: 2, url: await upstream('b'), weight: 1 },
  ]);
  for (let i = 0; i < 5; i++) expect((await get('/svc/x')).replica).toBe('b');
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: await upstream('a'), weight: 0 }]);
  expect((await get('/svc/x')).status).toBe(503);
});

test('close() lets a request in flight finish and does not wait for idle kept-alive connections', async () => {
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: await upstream('a'), weight: 1 }]);
  await get('/svc/warm'); // leaves a kept-alive connection behind
  const slow = get('/svc/slow');
  await waitUntil(async () => (await admin.inflight('svc', 'a')) === 1, 'the slow request in flight');
  const t0 = Date.now();
  await router.close();
  const closedAfterMs = Date.now() - t0;
  expect((await slow).status).toBe(200);
  // Waiting for the idle connection would take the whole grace period (ROUTER_CLOSE_GRACE_MS,
  // 10 s by default); the slow request alone takes 400 ms.
  expect(closedAfterMs).toBeLessThan(8000);
  await expect(fetch(`${router.trafficUrl}/svc/x`)).rejects.toThrow();
});

test('service names are percent-decoded the same way on both ports', async () => {
  await admin.setBackends('my svc', [{ replicaId: 'a', version: 1, url: await upstream('a'), weight: 1 }]);
  expect((await get('/my%20svc/x')).status).toBe(200);
  expect((await admin.getService('my svc'))?.backends).toHaveLength(1);
  await admin.removeService('my svc');
  expect(await admin.getService('my svc')).toBeUndefined();
  expect((await get('/my%20svc/x')).status).toBe(404);
});

test('admin client errors: unreachable is RouterUnavailableError, a refusal is RouterRequestError', async () => {
  const nobody = new RouterAdminClient(`http://127.0.0.1:${await freePort()}`, TOKEN);
  await expect(nobody.setBackends('svc', [])).rejects.toBeInstanceOf(RouterUnavailableError);
  expect(await nobody.health()).toBe(false);
  expect(await admin.health()).toBe(true);
  const dup = admin.setBackends('svc', [
    { replicaId: 'a', version: 1, url: 'http://127.0.0.1:1', weight: 1 },
    { replicaId: 'a', version: 1, url: 'http://127.0.0.1:2', weight: 1 },
  ]);
  await expect(dup).rejects.toBeInstanceOf(RouterRequestError);
  await expect(dup).rejects.toThrow(/backends\[1\]\.replicaId: .*a.* appears twice/);
  await expect(admin.setBackends('svc', [{ replicaId: 'a', version: 1.5, url: 'http://x', weight: 1 }])).rejects.toThrow(/backends\[0\]\.version/);
  await expect(admin.setBackends('svc', [{ replicaId: '', version: 1, url: 'http://x', weight: 1 }])).rejects.toThrow(/backends\[0\]\.replicaId/);
  expect(await admin.inflight('never-seen')).toBe(0);
  const byReplica = await fetch(`${router.adminUrl}/v1/services/never-seen/inflight`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(await byReplica.json()).toEqual({ inflight: 0, byReplica: {} });
});

test('an unreadable state file stops the router from starting, naming the file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-'));
  const statePath = path.join(dir, 'routes.json');
  fs.writeFileSync(statePath, '{"services": {"svc": ');
  await expect(startRouter({ trafficPort: 0, adminPort: 0, token: TOKEN, statePath })).rejects.toThrow(/routes\.json is unreadable/);
});

test('the state file is replaced atomically: no temp files left, content is the current table', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-'));
  const statePath = path.join(dir, 'state', 'routes.json');
  const r = await startRouter({ trafficPort: 0, adminPort: 0, token: TOKEN, statePath });
  const c = new RouterAdminClient(r.adminUrl, TOKEN);
  await c.setBackends('a', [{ replicaId: 'a1', version: 1, url: 'http://127.0.0.1:1', weight: 1 }]);
  await c.setBackends('b', [{ replicaId: 'b1', version: 1, url: 'http://127.0.0.1:2', weight: 1 }]);
  await c.removeService('a');
  await r.close();
  expect(fs.readdirSync(path.dirname(statePath))).toEqual(['routes.json']);
  expect(JSON.parse(fs.readFileSync(statePath, 'utf8'))).toEqual({ services: { b: { backends: [{ replicaId: 'b1', version: 1, url: 'http://127.0.0.1:2', weight: 1 }] } } });
});

test('hop-by-hop headers, and those the client names in Connection, are not forwarded; the rest are', async () => {
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: await upstream('a'), weight: 1 }]);
  const { hostname, port } = new URL(router.trafficUrl);
  const seen = await new Promise<Record<string, string>>((resolve, reject) => {
    const headers = { connection: 'keep-alive, x-per-hop', 'x-per-hop': '1', 'proxy-authorization': 'Basic eA==', authorization: 'Bearer user', 'x-request-id': 'r1' };
    http.get({ hostname, port, path: '/svc/headers', headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve(JSON.parse(text)));
    }).on('error', reject);
  });
  expect(seen['x-per-hop']).toBeUndefined();
  expect(seen['proxy-authorization']).toBeUndefined();
  expect(seen).toMatchObject({ authorization: 'Bearer user', 'x-request-id': 'r1' });
  expect(seen.host).toBe(new URL((await admin.getService('svc'))!.backends[0].url).host);
});

test('a replica that accepts the connection and never answers: 504 after ROUTER_UPSTREAM_TIMEOUT_MS, not a request held forever; a stream that has started is not cut', async () => {
  const timed = await startRouter({ trafficPort: 0, adminPort: 0, token: TOKEN, upstreamTimeoutMs: 300 });
  const hung = net.createServer(() => undefined); // reads nothing, answers nothing
  const hungPort = await freePort();
  await new Promise<void>((resolve) => hung.listen(hungPort, '127.0.0.1', resolve));
  try {
    const timedAdmin = new RouterAdminClient(timed.adminUrl, TOKEN);
    await timedAdmin.setBackends('hung', [{ replicaId: 'h1', version: 1, url: `http://127.0.0.1:${hungPort}`, weight: 1 }]);
    const res = await fetch(`${timed.trafficUrl}/hung/v1/models`, { signal: AbortSignal.timeout(60_000) });
    expect(res.status).toBe(504);
    expect(await res.text()).toContain('replica h1 sent no response within 300 ms');
    // The stats count it as a 5xx of that version.
    expect((await timedAdmin.countersByVersion('hung'))['1']).toMatchObject({ requests: 1, errors5xx: 1 });

    // An SSE stream whose headers came at once runs past the timeout (5 events 100 ms apart), to its end.
    const streaming = await upstream('s');
    await timedAdmin.setBackends('stream', [{ replicaId: 's1', version: 1, url: streaming, weight: 1 }]);
    const sse = await fetch(`${timed.trafficUrl}/stream/sse`);
    expect(sse.status).toBe(200);
    const body = await sse.text();
    expect(body.match(/^data:/gm)?.length).toBe(5);
  } finally {
    hung.close();
    await timed.close();
  }
});

test("a rollout's ordered traffic changes: an older one arriving late (a retry) changes nothing; unordered ones always apply", async () => {
  const [a, b, c] = [await upstream('a'), await upstream('b'), await upstream('c')];
  const order = (seq: number, writer = 'rollout-svc-v2/run1') => ({ writer, seq });
  expect(await admin.setBackends('svc', [{ replicaId: 'b', version: 2, url: b, weight: 1 }], order(2))).toEqual({ applied: true });
  expect(await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: a, weight: 1 }], order(1))).toEqual({ applied: false });
  expect(await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: a, weight: 1 }], order(2))).toEqual({ applied: false });
  expect((await get('/svc/x')).replica).toBe('b');
  // The service workflow (healing) writes unordered: applied; the rollout's late older write still loses.
  expect(await admin.setBackends('svc', [{ replicaId: 'c', version: 2, url: c, weight: 1 }])).toEqual({ applied: true });
  expect(await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: a, weight: 1 }], order(1))).toEqual({ applied: false });
  expect((await get('/svc/x')).replica).toBe('c');
  expect((await admin.getService('svc'))?.order).toEqual(order(2));
  // The next rollout is another writer: its first change applies.
  expect(await admin.setBackends('svc', [{ replicaId: 'a', version: 3, url: a, weight: 1 }], order(1, 'rollout-svc-v3/run1'))).toEqual({ applied: true });
  expect((await get('/svc/x')).replica).toBe('a');
  await expect(admin.setBackends('svc', [], { writer: '', seq: 1 })).rejects.toThrow(/order\.writer: expected a non-empty string/);
});
