/**
 * The traffic path: `/<service>/<rest>` → a backend's `/<rest>`, chosen by weight.
 * Request bodies up to 1 MiB are read first (model requests are small JSON), so a request whose
 * replica refused the connection or broke it before answering can be retried on another one.
 * Responses are streamed back as they arrive (SSE tokens are not buffered). Nothing is retried
 * once a response has started. A replica that keeps refusing connections is ejected for a while
 * (ejection.ts); `X-Rollout-Version` pins a request to one version (pinning.ts).
 */
import type http from 'node:http';
import type pino from 'pino';
import { Pool, type Dispatcher } from 'undici';
import { Ejections } from './ejection';
import { PIN_HEADER, resolvePin, type Pin } from './pinning';

const UNPINNED: Pin = { ok: true };
import { readBodyUpTo } from './read-body';
import type { RouteStore } from './route-store';
import type { RouterStats } from './stats';
import type { Backend } from './types';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host']);
/** Bodies up to this size are buffered (and retryable); larger ones stream. */
const BUFFERED_BODY_BYTES = 1024 * 1024;
/** Errors that mean the request never reached the backend. */
const NOT_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EHOSTUNREACH']);
/**
 * The connection broke before any response byte (a replica dying, a stale kept-alive socket).
 * The replica may have seen the request, but it produced nothing; a model request is safe to
 * run again, and the design forbids dropping requests because a replica went away.
 */
const RESET_BEFORE_RESPONSE = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

export class Proxy {
  private readonly pools = new Map<string, Pool>();
  private readonly ejections = new Ejections();

  constructor(
    private readonly routes: RouteStore,
    private readonly stats: RouterStats,
    private readonly logger?: pino.Logger,
  ) {}

  private readonly targets = new Map<string, { origin: string; basePath: string }>();

  /** A backend URL parsed once, not on every request. */
  private targetOf(url: string): { origin: string; basePath: string } {
    let target = this.targets.get(url);
    if (!target) {
      const parsed = new URL(url);
      this.targets.set(url, (target = { origin: parsed.origin, basePath: parsed.pathname.replace(/\/$/, '') }));
    }
    return target;
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (!pool) this.pools.set(origin, (pool = new Pool(origin, { connections: 256, pipelining: 1, connectTimeout: 2000 })));
    return pool;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close()));
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const match = /^\/([^/?]+)(\/[^?]*)?(\?.*)?$/.exec(url);
    if (!match) return sendJson(res, 404, { error: 'no service in path: use /<service>/…' });
    const [, rawService, rest = '/', query = ''] = match;
    const service = decodeSegment(rawService);
    if (!this.routes.has(service)) return sendJson(res, 404, { error: `unknown service "${service}"` });
    // The serving versions are only worked out for a request that pins one.
    const pinHeader = req.headers[PIN_HEADER];
    const pin = pinHeader === undefined ? UNPINNED : resolvePin(pinHeader, this.routes.servingVersions(service), service);
    if (!pin.ok) return sendJson(res, 404, { error: pin.error });

    // Small bodies (model requests) are read first, so a refused connection can be retried on
    // another replica; large or unsized bodies stream straight through (and are not retried).
    const length = Number(req.headers['content-length'] ?? (req.headers['transfer-encoding'] ? NaN : 0));
    let body: Buffer | http.IncomingMessage;
    if (Number.isFinite(length) && length <= BUFFERED_BODY_BYTES) {
      try {
        body = await readBodyUpTo(req, BUFFERED_BODY_BYTES, 'request body longer than its content-length');
      } catch (err) {
        return sendJson(res, 400, { error: (err as Error).message });
      }
    } else body = req;
    // The client going away aborts the upstream request (and frees the replica's in-flight slot).
    const exchange: Exchange = { req, res, body, headers: forwardHeaders(req, !Buffer.isBuffer(body)), clientGone: false };
    res.on('close', () => {
      if (res.writableFinished) return;
      exchange.clientGone = true;
      exchange.abort?.(new Error('the client went away'));
    });

    const picker = this.routes.picker(service, pin.version);
    const tried = new Set<string>();
    // Ejected replicas are skipped, unless nothing else is left to try.
    const ejected = this.ejections.ejected();
    for (;;) {
      const backend = (ejected.size ? picker.pick(new Set([...tried, ...ejected])) : undefined) ?? picker.pick(tried);
      if (!backend) {
        return tried.size === 0
          ? sendJson(res, 503, { error: `no ready replicas for service ${service}` })
          : sendJson(res, 502, { error: `no replica of ${service} accepted the connection (tried ${tried.size})` });
      }
      tried.add(backend.replicaId);
      const outcome = await this.forward(service, backend, rest + query, exchange);
      if (outcome !== 'retry') return;
      if (!Buffer.isBuffer(body)) return sendJson(res, 502, { error: `replica ${backend.replicaId} refused the connection` });
    }
  }

  /**
   * One attempt on one backend, through undici's dispatch() with a handler: the response is
   * written into `res` chunk by chunk with backpressure (no promise, stream or AbortSignal per
   * request in between). Resolves 'retry' if the replica failed before answering.
   */
  private forward(service: string, backend: Backend, path: string, exchange: Exchange): Promise<'done' | 'retry'> {
    const { req, res, body } = exchange;
    const target = this.targetOf(backend.url);
    this.stats.started(service, backend.version, backend.replicaId);
    const startedAt = performance.now();
    let ttfbMs = 0;
    let status: number | 'connect-error' = 502;
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: 'done' | 'retry') => {
        if (settled) return;
        settled = true;
        exchange.abort = undefined;
        const timing = status === 'connect-error' ? undefined : { ttfbMs, durationMs: performance.now() - startedAt };
        this.stats.finished(service, backend.version, backend.replicaId, status, timing);
        resolve(outcome);
      };
      const failed = (err: Error): void => {
        const code = (err as NodeJS.ErrnoException).code ?? (err as { cause?: NodeJS.ErrnoException }).cause?.code;
        if (!res.headersSent && code && (NOT_SENT.has(code) || RESET_BEFORE_RESPONSE.has(code)) && !exchange.clientGone) {
          status = 'connect-error';
          this.ejections.connectFailed(backend.replicaId);
          this.logger?.warn({ service, replica: backend.replicaId, code }, 'replica failed before answering; trying another');
          return settle('retry');
        }
        if (!exchange.clientGone) this.logger?.warn({ service, replica: backend.replicaId, code, err: err.message, responseStarted: res.headersSent }, 'upstream request failed');
        if (!res.headersSent) sendJson(res, 502, { error: `replica ${backend.replicaId} failed: ${code ?? err.message}` });
        else res.destroy(); // a response had started: cut it rather than pretend it completed
        settle('done');
      };
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart: (controller) => {
          if (exchange.clientGone) controller.abort(new Error('the client went away'));
          else exchange.abort = (reason) => controller.abort(reason);
        },
        onResponseStart: (controller, statusCode, headers) => {
          if (statusCode < 200) return; // informational (1xx): the final answer follows
          status = statusCode;
          ttfbMs = performance.now() - startedAt;
          this.ejections.answered(backend.replicaId);
          res.writeHead(statusCode, responseHeaders(headers, backend));
          // Streams (SSE, chunked) get their headers at once; sized bodies go out with them.
          if (headers['content-length'] === undefined) res.flushHeaders();
        },
        onResponseData: (controller, chunk) => {
          if (res.write(chunk)) return;
          controller.pause();
          res.once('drain', () => controller.resume());
        },
        onResponseEnd: () => {
          res.end();
          settle('done');
        },
        onResponseError: (controller, err) => failed(err),
      };
      try {
        this.pool(target.origin).dispatch(
          {
            path: target.basePath + path,
            method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
            headers: exchange.headers,
            body: Buffer.isBuffer(body) ? (body.length > 0 ? body : undefined) : body,
          },
          handler,
        );
      } catch (err) {
        failed(err as Error);
      }
    });
  }
}

/** One client request on its way through: what every attempt on a backend shares. */
interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  body: Buffer | http.IncomingMessage;
  /** The request headers for the replica, as a flat [name, value, …] list. */
  headers: string[];
  clientGone: boolean;
  /** Aborts the attempt in progress, if any. */
  abort?: (reason: Error) => void;
}

/** The replica's headers minus hop-by-hop ones, plus which replica and version answered. */
function responseHeaders(headers: Record<string, string | string[] | undefined>, backend: Backend): Record<string, string | string[] | undefined> {
  for (const k in headers) if (HOP_BY_HOP.has(k)) delete headers[k];
  headers['x-rollout-replica'] = backend.replicaId;
  headers['x-rollout-version'] = String(backend.version);
  // A proxy in front of this one (nginx) must not buffer token streams either.
  if (String(headers['content-type']).startsWith('text/event-stream')) headers['x-accel-buffering'] = 'no';
  return headers;
}

/**
 * Headers for the replica, from the raw list: hop-by-hop ones dropped (also those the client
 * named in `Connection`); content-length kept only for a streamed body (undici sets it for a buffered one).
 */
function forwardHeaders(req: http.IncomingMessage, streamedBody: boolean): string[] {
  const connection = req.headers.connection;
  const named = connection && connection !== 'keep-alive' && connection !== 'close' ? new Set(connection.toLowerCase().split(',').map((t) => t.trim())) : undefined;
  const raw = req.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i].toLowerCase();
    if (HOP_BY_HOP.has(k) || named?.has(k) || (k === 'content-length' && !streamedBody)) continue;
    out.push(k, raw[i + 1]);
  }
  return out;
}

/** A percent-encoded path segment (`my%20svc`), as the admin client encodes service names. */
export function decodeSegment(segment: string): string {
  if (!segment.includes('%')) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
  res.end(data);
}
