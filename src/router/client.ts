/** The router's admin API, as the activities and the dev stack call it. */
import { request } from 'undici';
import type { StatsSnapshot } from '../plan/analysis';
import { countersFromMetrics } from './traffic-counters';
import type { Backend, ServiceRoute, TrafficOrder, VersionStats } from './types';

/** The router could not be reached: retryable. */
export class RouterUnavailableError extends Error {
  override name = 'RouterUnavailableError';
}
/** The router refused the request (4xx): not retryable. */
export class RouterRequestError extends Error {
  override name = 'RouterRequestError';
}

/** The connection was closed or reset before an answer: nothing was refused. */
const CLOSED_UNDER_US = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

export interface ServiceView extends ServiceRoute {
  stats: Record<string, VersionStats>;
}

export class RouterAdminClient {
  constructor(
    private readonly adminUrl: string,
    private readonly token: string,
  ) {}

  /**
   * One admin request, its answer as text; a 404 is an answer only where the caller says so (an
   * unknown service). A kept-alive connection the router closed just as the request went out (a
   * router handing over to a new process closes its idle admin connections) is retried on a new
   * one: every admin call is idempotent (a PUT sets the whole list).
   */
  private async send(method: 'GET' | 'PUT' | 'DELETE', path: string, body?: unknown, notFoundOk = false): Promise<{ status: number; text: string }> {
    let res;
    for (let attempt = 1; ; attempt++) {
      try {
        res = await request(this.adminUrl.replace(/\/$/, '') + path, {
          method,
          headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
          body: body === undefined ? undefined : JSON.stringify(body),
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (attempt < 3 && code !== undefined && CLOSED_UNDER_US.has(code)) continue;
        throw new RouterUnavailableError(`router admin API at ${this.adminUrl} unreachable (${method} ${path}): ${code ?? ''} ${(err as Error).message}`.replace(/  +/g, ' '));
      }
    }
    let text: string;
    try {
      text = await res.body.text();
    } catch (err) {
      throw new RouterUnavailableError(`router admin API at ${this.adminUrl} broke off its answer to ${method} ${path}: ${(err as Error).message}`);
    }
    if (res.statusCode >= 500) throw new RouterUnavailableError(`router answered ${res.statusCode} to ${method} ${path}: ${text}`);
    if (res.statusCode === 401) throw new RouterRequestError(`router refused ${method} ${path}: 401 wrong or missing admin token (ROUTER_TOKEN)`);
    if (res.statusCode >= 400 && !(res.statusCode === 404 && notFoundOk)) throw new RouterRequestError(`router refused ${method} ${path}: ${res.statusCode} ${text}`);
    return { status: res.statusCode, text };
  }

  /** One admin request answered with JSON. */
  private async call(method: 'GET' | 'PUT' | 'DELETE', path: string, body?: unknown, notFoundOk = false): Promise<{ status: number; json: unknown }> {
    const { status, text } = await this.send(method, path, body, notFoundOk);
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      throw new RouterRequestError(`router answered ${method} ${path} with something other than JSON (is ${this.adminUrl} the router's admin port?): ${text.slice(0, 200)}`);
    }
    return { status, json };
  }

  /** `applied` false: `order` was not newer than the last write of its writer, and nothing changed. */
  async setBackends(service: string, backends: Backend[], order?: TrafficOrder): Promise<{ applied: boolean }> {
    const { json } = await this.call('PUT', `/v1/services/${encodeURIComponent(service)}/backends`, order ? { backends, order } : { backends });
    return { applied: (json as { applied?: boolean } | undefined)?.applied !== false };
  }

  async getService(service: string): Promise<ServiceView | undefined> {
    const { status, json } = await this.call('GET', `/v1/services/${encodeURIComponent(service)}`, undefined, true);
    return status === 404 ? undefined : (json as ServiceView);
  }

  async inflight(service: string, replicaId?: string): Promise<number> {
    const query = replicaId ? `?replica=${encodeURIComponent(replicaId)}` : '';
    const { json } = await this.call('GET', `/v1/services/${encodeURIComponent(service)}/inflight${query}`);
    return (json as { inflight: number }).inflight;
  }

  /** Polls until the replica has no request in flight, or the timeout passes. */
  async waitForDrain(service: string, replicaId: string, timeoutMs: number, pollMs = 200): Promise<{ drained: boolean; inflight: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const inflight = await this.inflight(service, replicaId);
      if (inflight === 0) return { drained: true, inflight };
      if (Date.now() >= deadline) return { drained: false, inflight };
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /**
   * The service's cumulative counters per version (requests, 5xx, time-to-first-byte buckets),
   * read from the router's Prometheus `/metrics`; versions without traffic are absent.
   */
  async countersByVersion(service: string): Promise<StatsSnapshot> {
    const { text } = await this.send('GET', '/metrics');
    try {
      return countersFromMetrics(text, service);
    } catch (err) {
      throw new RouterRequestError(`router answered GET /metrics with something other than its metrics (is ${this.adminUrl} the router's admin port?): ${(err as Error).message}`);
    }
  }

  async removeService(service: string): Promise<void> {
    await this.call('DELETE', `/v1/services/${encodeURIComponent(service)}`, undefined, true);
  }

  async health(): Promise<boolean> {
    try {
      const res = await request(this.adminUrl.replace(/\/$/, '') + '/healthz', { headersTimeout: 2000 });
      await res.body.dump();
      return res.statusCode === 200;
    } catch {
      return false;
    }
  }
}
