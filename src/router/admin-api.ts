/**
 * The admin API (its own port, loopback by default; contract in types.ts). Every route but
 * /healthz needs `Authorization: Bearer <token>`, compared in constant time.
 */
import crypto from 'node:crypto';
import type http from 'node:http';
import { decodeSegment, sendJson } from './proxy';
import { readBodyUpTo } from './read-body';
import type { RouteStore } from './route-store';
import type { RouterStats } from './stats';
import type { Backend } from './types';

export function adminHandler(token: string, routes: RouteStore, stats: RouterStats) {
  const expected = crypto.createHash('sha256').update(token).digest();
  const authorized = (req: http.IncomingMessage): boolean => {
    const header = req.headers.authorization ?? '';
    const given = crypto.createHash('sha256').update(header.startsWith('Bearer ') ? header.slice(7) : '').digest();
    return crypto.timingSafeEqual(given, expected);
  };

  return async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname === '/healthz') return sendJson(res, 200, { ok: true });
    if (!authorized(req)) return sendJson(res, 401, { error: 'missing or wrong bearer token' });
    if (url.pathname === '/metrics' && req.method === 'GET') {
      const text = await stats.registry.metrics();
      res.writeHead(200, { 'content-type': stats.registry.contentType });
      res.end(text);
      return;
    }
    const m = /^\/v1\/services(?:\/([^/]+)(\/backends|\/inflight)?)?$/.exec(url.pathname);
    if (!m) return sendJson(res, 404, { error: `no admin route ${req.method} ${url.pathname}` });
    const [, rawService, sub] = m;
    const service = rawService === undefined ? undefined : decodeSegment(rawService);
    if (!service) {
      if (req.method === 'GET') return sendJson(res, 200, routes.all());
      return sendJson(res, 405, { error: 'use GET' });
    }
    if (sub === '/backends' && req.method === 'PUT') {
      let parsed: unknown;
      try {
        parsed = JSON.parse((await readBodyUpTo(req, MAX_ADMIN_BODY_BYTES, `longer than ${MAX_ADMIN_BODY_BYTES} bytes`)).toString() || '{}');
      } catch (err) {
        return sendJson(res, 400, { error: `body is not JSON: ${(err as Error).message}` });
      }
      const problem = validateBackends(parsed);
      if (problem) return sendJson(res, 400, { error: problem });
      routes.set(service, (parsed as { backends: Backend[] }).backends);
      return sendJson(res, 200, { backends: routes.backends(service) });
    }
    if (sub === '/inflight' && req.method === 'GET') {
      const replica = url.searchParams.get('replica');
      if (replica) return sendJson(res, 200, { inflight: stats.inflight(service, replica) });
      return sendJson(res, 200, { inflight: stats.inflight(service), byReplica: stats.inflightByReplicaOf(service) });
    }
    if (!sub && req.method === 'GET') {
      if (!routes.has(service)) return sendJson(res, 404, { error: `unknown service "${service}"` });
      return sendJson(res, 200, { backends: routes.backends(service), stats: await stats.byVersion(service) });
    }
    if (!sub && req.method === 'DELETE') {
      routes.remove(service);
      res.writeHead(204).end();
      return;
    }
    sendJson(res, 405, { error: `method ${req.method} not allowed on ${url.pathname}` });
  };
}

function validateBackends(value: unknown): string | undefined {
  if (!value || typeof value !== 'object' || !Array.isArray((value as { backends?: unknown }).backends)) return 'expected {"backends": [...]}';
  const seen = new Set<string>();
  for (const [i, b] of ((value as { backends: unknown[] }).backends).entries()) {
    const backend = b as Partial<Backend>;
    if (typeof backend?.replicaId !== 'string' || !backend.replicaId) return `backends[${i}].replicaId: expected a non-empty string`;
    // In-flight counts and the round-robin state are kept per replica id.
    if (seen.has(backend.replicaId)) return `backends[${i}].replicaId: "${backend.replicaId}" appears twice`;
    seen.add(backend.replicaId);
    if (!Number.isInteger(backend.version)) return `backends[${i}].version: expected an integer`;
    if (typeof backend.weight !== 'number' || backend.weight < 0) return `backends[${i}].weight: expected a number ≥ 0`;
    try {
      if (!/^https?:$/.test(new URL(String(backend.url)).protocol)) throw new Error();
    } catch {
      return `backends[${i}].url: expected an http(s) URL, got ${JSON.stringify(backend.url)}`;
    }
  }
  return undefined;
}

/** A route table of a few hundred replicas is a few tens of KiB; anything far larger is a mistake. */
const MAX_ADMIN_BODY_BYTES = 4 * 1024 * 1024;

