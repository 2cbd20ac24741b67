/**
 * Canary analysis on the real router: a healthy primary and a canary that answers every other
 * request with a 500, real requests through the router, then countersByVersion (its /metrics)
 * read twice and judged by the pure analysis.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createActivities } from '../../src/activities';
import { judgeCanary, versionWindow, windowBetween } from '../../src/plan';
import { RouterAdminClient, RouterRequestError, RouterUnavailableError } from '../../src/router/client';
import { startRouter, type RunningRouter } from '../../src/router/server';
import { freePort } from '../helpers/ports';
import { startUpstream, stopUpstreams } from './upstream';

const TOKEN = 'test-token';
let router: RunningRouter;
let admin: RouterAdminClient;
let stateDir: string;

beforeEach(async () => {
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'router-counters-'));
  router = await startRouter({ trafficPort: 0, adminPort: 0, token: TOKEN, statePath: path.join(stateDir, 'routes.json') });
  admin = new RouterAdminClient(router.adminUrl, TOKEN);
});

afterEach(async () => {
  await router.close();
  await stopUpstreams();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

async function send(service: string, n: number): Promise<Record<number, number>> {
  const statuses: Record<number, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await fetch(`${router.trafficUrl}/${service}/v1/completions`, { method: 'POST', body: '{"prompt":"hi"}', headers: { 'content-type': 'application/json' } });
    await res.arrayBuffer();
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
  }
  return statuses;
}

const lastBucket = (buckets: { le: number | '+Inf'; count: number }[]) => buckets[buckets.length - 1];

test('countersByVersion reads requests, 5xx and time-to-first-byte buckets per version; two readings judge the canary a failure', async () => {
  const [primary, canary, other] = [await startUpstream('primary'), await startUpstream('canary', { errorEvery: 2 }), await startUpstream('other')];
  await admin.setBackends('svc', [
    { replicaId: 'svc-v1-r0', version: 1, url: primary.url, weight: 1 },
    { replicaId: 'svc-v2-r0', version: 2, url: canary.url, weight: 1 },
  ]);
  await admin.setBackends('other', [{ replicaId: 'other-v1-r0', version: 1, url: other.url, weight: 1 }]);
  expect(await admin.countersByVersion('svc')).toEqual({});

  expect(await send('svc', 40)).toEqual({ 200: 30, 500: 10 });
  await send('other', 7);
  const first = await admin.countersByVersion('svc');
  expect(Object.keys(first).sort()).toEqual(['1', '2']);
  expect(first['1']).toMatchObject({ requests: 20, errors5xx: 0 });
  expect(first['2']).toMatchObject({ requests: 20, errors5xx: 10 });
  for (const v of ['1', '2']) {
    expect(lastBucket(first[v].ttfbBuckets)).toEqual({ le: '+Inf', count: 20 });
    const les = first[v].ttfbBuckets.slice(0, -1).map((b) => b.le as number);
    expect(les).toEqual([...les].sort((a, b) => a - b));
  }
  // A Temporal payload is JSON: the snapshot must come back the same.
  expect(JSON.parse(JSON.stringify(first))).toEqual(first);
  expect(await admin.countersByVersion('other')).toEqual({ '1': expect.objectContaining({ requests: 7, errors5xx: 0 }) });

  await send('svc', 80);
  const second = await admin.countersByVersion('svc');
  expect(second['1']).toMatchObject({ requests: 60, errors5xx: 0 });
  expect(second['2']).toMatchObject({ requests: 60, errors5xx: 30 });

  const canaryWindow = windowBetween(first['2'], second['2']);
  const primaryWindow = versionWindow(first, second, 1);
  expect(canaryWindow).toMatchObject({ requests: 40, errors5xx: 20, errorRate: 0.5 });
  expect(primaryWindow).toMatchObject({ requests: 40, errors5xx: 0, errorRate: 0 });
  // Loopback answers come back in well under a second.
  expect(canaryWindow.p99Ms).toBeGreaterThan(0);
  expect(canaryWindow.p99Ms).toBeLessThan(1000);

  const judgement = judgeCanary({ canary: canaryWindow, primary: primaryWindow, thresholds: { min_requests: 20, max_error_rate: 0.05, max_p99_latency_ms: 5000 } });
  expect(judgement.verdict).toBe('fail');
  expect(judgement.reasons[0]).toBe('canary error rate 50.0% > max 5% (primary 0.0%)');
  expect(judgement.reasons[1]).toMatch(/^canary p99 latency [\d.]+ ms ≤ max 5000 ms$/);

  // The same reading through the activity the workflow will call.
  const activities = createActivities({ providers: {}, router: admin, routerPublicUrl: router.trafficUrl });
  expect(await activities.readTrafficStats({ service: 'svc' })).toEqual(second);
});

test('a router restart between readings: the window is the new counters, not a negative difference', async () => {
  const primary = await startUpstream('primary');
  const backends = [{ replicaId: 'svc-v1-r0', version: 1, url: primary.url, weight: 1 }];
  await admin.setBackends('svc', backends);
  await send('svc', 30);
  const before = await admin.countersByVersion('svc');

  const adminPort = Number(new URL(router.adminUrl).port);
  await router.close();
  router = await startRouter({ trafficPort: 0, adminPort, token: TOKEN, statePath: path.join(stateDir, 'routes.json') });
  await send('svc', 5);
  const after = await admin.countersByVersion('svc');
  expect(after['1']).toMatchObject({ requests: 5, errors5xx: 0 });
  expect(versionWindow(before, after, 1)).toMatchObject({ requests: 5, errors5xx: 0, errorRate: 0 });
});

test('errors: an unreachable router is RouterUnavailableError (retryable), a wrong token RouterRequestError', async () => {
  const nowhere = new RouterAdminClient(`http://127.0.0.1:${await freePort()}`, TOKEN);
  await expect(nowhere.countersByVersion('svc')).rejects.toThrow(RouterUnavailableError);
  await expect(new RouterAdminClient(router.adminUrl, 'wrong').countersByVersion('svc')).rejects.toThrow(RouterRequestError);
  await expect(new RouterAdminClient(router.adminUrl, 'wrong').countersByVersion('svc')).rejects.toThrow(/401/);
});
