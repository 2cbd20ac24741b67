/** The router on real sockets: weighted split, admin API auth, errors, retries, streaming, persistence. */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { RouterAdminClient } from '../../src/router/client';
import { startRouter, type RunningRouter } from '../../src/router/server';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';
import { startUpstream, stopUpstreams, upstream } from './upstream';

const TOKEN = 'test-token';
let router: RunningRouter;
let admin: RouterAdminClient;
let stateDir: string;

beforeEach(async () => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-'));
  router = await startRouter({ trafficPort: 0, adminPort: 0, token: TOKEN, statePath: path.join(stateDir, 'routes.json') });
  admin = new RouterAdminClient(router.adminUrl, TOKEN);
});

afterEach(async () => {
  await router.close();
  await stopUpstreams();
});

async function get(p: string, init?: RequestInit) {
  const res = await fetch(router.trafficUrl + p, init);
  return { status: res.status, headers: res.headers, body: await res.text() };
}

test('weights 3:1 split 400 requests exactly 300/100 (smooth weighted round-robin)', async () => {
  const [a, b] = [await upstream('a'), await upstream('b')];
  await admin.setBackends('svc', [
    { replicaId: 'a', version: 1, url: a, weight: 3 },
    { replicaId: 'b', version: 2, url: b, weight: 1 },
  ]);
  const counts: Record<string, number> = {};
  for (let i = 0; i < 400; i++) {
    const r = await get('/svc/hello?x=1');
    counts[r.headers.get('x-rollout-replica') ?? '?'] = (counts[r.headers.get('x-rollout-replica') ?? '?'] ?? 0) + 1;
  }
  expect(counts).toEqual({ a: 300, b: 100 });
  const view = await admin.getService('svc');
  expect(view?.stats['1'].requests).toBe(300);
  expect(view?.stats['2'].requests).toBe(100);
});

test('path, query, method and body reach the replica; version headers come back', async () => {
  await admin.setBackends('svc', [{ replicaId: 'a', version: 7, url: await upstream('a'), weight: 1 }]);
  const r = await get('/svc/v1/completions?stream=false', { method: 'POST', body: '{"prompt":"hi"}', headers: { 'content-type': 'application/json' } });
  expect(r.status).toBe(200);
  expect(JSON.parse(r.body)).toEqual({ name: 'a', url: '/v1/completions?stream=false', body: '{"prompt":"hi"}' });
  expect(r.headers.get('x-rollout-version')).toBe('7');
});

test('unknown service 404, no ready backend 503', async () => {
  expect((await get('/nope/x')).status).toBe(404);
  await admin.setBackends('empty', []);
  const r = await get('/empty/x');
  expect(r.status).toBe(503);
  expect(r.body).toMatch(/no ready replicas for service empty/);
});

test('the admin API needs the bearer token', async () => {
  expect((await fetch(`${router.adminUrl}/v1/services`)).status).toBe(401);
  expect((await fetch(`${router.adminUrl}/v1/services`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
  expect((await fetch(`${router.adminUrl}/v1/services`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  expect((await fetch(`${router.adminUrl}/healthz`)).status).toBe(200);
  await expect(new RouterAdminClient(router.adminUrl, 'wrong').setBackends('x', [])).rejects.toThrow(/401/);
});

test('invalid backends are refused with the field named', async () => {
  await expect(admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: 'ftp://x', weight: 1 }])).rejects.toThrow(/backends\[0\]\.url/);
  await expect(admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: 'http://x', weight: -1 }])).rejects.toThrow(/backends\[0\]\.weight/);
});

test('a replica that refuses connections is skipped: the request succeeds on another', async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  await admin.setBackends('svc', [
    { replicaId: 'dead', version: 1, url: dead, weight: 1 },
    { replicaId: 'live', version: 1, url: await upstream('live'), weight: 1 },
  ]);
  for (let i = 0; i < 10; i++) {
    const r = await get('/svc/x', { method: 'POST', body: 'payload' });
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ name: 'live', body: 'payload' });
  }
});

test('in-flight count rises during a slow request and drains to 0', async () => {
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: await upstream('a'), weight: 1 }]);
  const slow = get('/svc/slow');
  await waitUntil(async () => (await admin.inflight('svc', 'a')) === 1, 'the slow request in flight');
  const drained = admin.waitForDrain('svc', 'a', 5000, 50);
  expect((await slow).status).toBe(200);
  expect(await drained).toEqual({ drained: true, inflight: 0 });
});

test('SSE streams through unbuffered: the first event arrives while the replica still holds the rest', async () => {
  const up = await startUpstream('a');
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: up.url, weight: 1 }]);
  const res = await fetch(`${router.trafficUrl}/svc/gated-sse`);
  const reader = res.body!.getReader();
  // A buffering router would hold the first event until the replica ends the response, which it
  // does only after release(): this read would then never complete (the test's timeout).
  const first = Buffer.from((await reader.read()).value ?? []).toString();
  expect(first).toBe('data: a-0\n\n');
  up.release();
  let rest = '';
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) rest += Buffer.from(chunk.value).toString();
  expect(rest).toBe('data: a-1\n\ndata: a-2\n\ndata: a-3\n\ndata: a-4\n\n');
}, 30_000);

test('the route table survives a router restart', async () => {
  const a = await upstream('a');
  await admin.setBackends('svc', [{ replicaId: 'a', version: 3, url: a, weight: 1 }]);
  await router.close();
  router = await startRouter({ trafficPort: 0, adminPort: 0, token: TOKEN, statePath: path.join(stateDir, 'routes.json') });
  admin = new RouterAdminClient(router.adminUrl, TOKEN);
  expect((await admin.getService('svc'))?.backends).toEqual([{ replicaId: 'a', version: 3, url: a, weight: 1 }]);
  expect((await get('/svc/x')).status).toBe(200);
});

describe('version pinning (X-Rollout-Version)', () => {
  beforeEach(async () => {
    await admin.setBackends('svc', [
      { replicaId: 'old', version: 1, url: await upstream('old'), weight: 3 },
      { replicaId: 'new', version: 2, url: await upstream('new'), weight: 1 },
    ]);
  });

  test.each([
    ['primary', 'old'],
    ['canary', 'new'],
    ['1', 'old'],
    ['v2', 'new'],
  ])('%s → only %s', async (pin, replica) => {
    for (let i = 0; i < 8; i++) {
      const r = await get('/svc/x', { headers: { 'x-rollout-version': pin } });
      expect(r.status).toBe(200);
      expect(r.headers.get('x-rollout-replica')).toBe(replica);
    }
  });

  test('an unknown version or a bad value is a clear 404, never a random replica', async () => {
    const unknown = await get('/svc/x', { headers: { 'x-rollout-version': '7' } });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatch(/version 7 of svc takes no traffic \(serving v1, v2\)/);
    const bad = await get('/svc/x', { headers: { 'x-rollout-version': 'newest' } });
    expect(bad.status).toBe(404);
    expect(JSON.parse(bad.body).error).toMatch(/"primary", "canary" or a version number, got "newest"/);
    await admin.setBackends('svc', [{ replicaId: 'old', version: 1, url: await upstream('old'), weight: 1 }]);
    const noCanary = await get('/svc/x', { headers: { 'x-rollout-version': 'canary' } });
    expect(noCanary.status).toBe(404);
    expect(noCanary.body).toMatch(/svc has no canary: serving v1/);
  });
});

test('a replica that keeps refusing connections is ejected: later requests do not try it', async () => {
  const dead = `http://127.0.0.1:${await freePort()}`;
  await admin.setBackends('svc', [
    { replicaId: 'dead', version: 1, url: dead, weight: 1 },
    { replicaId: 'live', version: 1, url: await upstream('live'), weight: 1 },
  ]);
  for (let i = 0; i < 20; i++) expect((await get('/svc/x')).status).toBe(200);
  const view = await admin.getService('svc');
  // Without ejection every other request would hit the dead replica first (10 refusals). With
  // it: 3 refusals eject it for 1 s, then one try per expired cooldown (1 s, 2 s, 4 s…), so a
  // slow machine that takes seconds for the 20 requests sees a few more, never 10.
  expect(view?.stats['1'].connectErrors).toBeGreaterThanOrEqual(3);
  expect(view?.stats['1'].connectErrors).toBeLessThan(8);
  expect(view?.stats['1'].requests).toBe(20);
});

test('latency quantiles in the admin JSON and Prometheus metrics on /metrics', async () => {
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: await upstream('a'), weight: 1 }]);
  for (let i = 0; i < 5; i++) await get('/svc/x');
  await get('/svc/slow');
  const stats = (await admin.getService('svc'))!.stats['1'];
  expect(stats.requests).toBe(6);
  expect(stats.latencyMs.p50).toBeGreaterThan(0);
  expect(stats.latencyMs.p50!).toBeLessThan(stats.latencyMs.p99!); // one of the 5 fast requests, below the slow one
  expect(stats.latencyMs.p99!).toBeGreaterThanOrEqual(250); // the ≥ 400 ms request: the 250–500 ms bucket or above
  const metrics = await fetch(`${router.adminUrl}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(metrics.status).toBe(200);
  const text = await metrics.text();
  expect(text).toMatch(/rollout_router_requests_total\{service="svc",version="1",code="2xx"\} 6/);
  // +Inf counts all 6; 0.25 s never the slow one (a busy machine makes requests slower, never faster).
  expect(text).toMatch(/rollout_router_request_duration_seconds_bucket\{le="\+Inf",service="svc",version="1"\} 6\n/);
  expect(text).toMatch(/rollout_router_request_duration_seconds_bucket\{le="0.25",service="svc",version="1"\} [0-5]\n/);
  expect((await fetch(`${router.adminUrl}/metrics`)).status).toBe(401);
});

test('a large request body streams through intact', async () => {
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: await upstream('a'), weight: 1 }]);
  const big = 'x'.repeat(3 * 1024 * 1024);
  const r = await get('/svc/upload', { method: 'POST', body: big });
  expect(r.status).toBe(200);
  expect(JSON.parse(r.body).body.length).toBe(big.length);
});

test('a chunked request body reaches the replica before the client has finished sending', async () => {
  await admin.setBackends('svc', [{ replicaId: 'a', version: 1, url: await upstream('a'), weight: 1 }]);
  const { hostname, port } = new URL(router.trafficUrl);
  // The body is ended only once the answer is in. A buffering router would wait for the end
  // of the body before forwarding it, so it would never answer (the test's timeout fails it).
  const text = await new Promise<string>((resolve, reject) => {
    const req = http.request({ hostname, port, path: '/svc/first-chunk', method: 'POST', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        resolve(body);
        req.end();
      });
    });
    req.on('error', reject);
    req.write('hello');
  });
  expect(text).toBe('got:hello');
}, 30_000);
