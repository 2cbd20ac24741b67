/** The router: the traffic port (weighted proxy) and the admin port (API), two HTTP servers. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type pino from 'pino';
import { adminHandler } from './admin-api';
import { Proxy, sendJson } from './proxy';
import { RouteStore } from './route-store';
import { RouterStats } from './stats';

export interface RouterOptions {
  /** Default 127.0.0.1. */
  trafficHost?: string;
  /** 0 = an ephemeral port. */
  trafficPort: number;
  /** Default 127.0.0.1: the admin API decides where traffic goes, keep it off public interfaces. */
  adminHost?: string;
  adminPort: number;
  token: string;
  /** Where the route table is persisted; absent = memory only. */
  statePath?: string;
  logger?: pino.Logger;
  /** How long close() lets requests in flight finish before cutting them (default 10 s). */
  closeGraceMs?: number;
}

export interface RunningRouter {
  trafficUrl: string;
  adminUrl: string;
  /** Stops accepting, lets requests in flight (streams too) finish within the grace period, then resolves. */
  close(): Promise<void>;
}

export async function startRouter(opts: RouterOptions): Promise<RunningRouter> {
  if (!opts.token) throw new Error('the router needs an admin token');
  const routes = new RouteStore(opts.statePath);
  const stats = new RouterStats();
  const proxy = new Proxy(routes, stats, opts.logger);
  let closing = false;
  const traffic = http.createServer((req, res) => {
    // A request arriving on a kept-alive connection while closing is still served, but the
    // connection is not kept: the client reconnects to whatever replaces this router.
    if (closing) res.setHeader('connection', 'close');
    proxy.handle(req, res).catch((err: Error) => {
      opts.logger?.error({ err, url: req.url }, 'traffic handler failed');
      if (!res.headersSent) sendJson(res, 500, { error: err.message });
      else res.destroy();
    });
  });
  traffic.keepAliveTimeout = 65_000;
  const handleAdmin = adminHandler(opts.token, routes, stats);
  const admin = http.createServer((req, res) => {
    handleAdmin(req, res).catch((err: Error) => {
      opts.logger?.error({ err, url: req.url }, 'admin handler failed');
      if (!res.headersSent) sendJson(res, 500, { error: err.message });
      else res.destroy();
    });
  });
  const trafficUrl = await listen(traffic, opts.trafficHost ?? '127.0.0.1', opts.trafficPort);
  let adminUrl: string;
  try {
    adminUrl = await listen(admin, opts.adminHost ?? '127.0.0.1', opts.adminPort);
  } catch (err) {
    traffic.close();
    throw err;
  }
  const graceMs = opts.closeGraceMs ?? 10_000;
  let closed: Promise<void> | undefined;
  return {
    trafficUrl,
    adminUrl,
    close: () => {
      closing = true;
      closed ??= Promise.all([drain(admin, graceMs), drain(traffic, graceMs)]).then(() => proxy.close());
      return closed;
    },
  };
}

/**
 * Stops listening and waits for the open connections to end. server.close() alone would also
 * wait for kept-alive connections that go idle *after* it was called (up to keepAliveTimeout,
 * 65 s), so idle connections are swept until none is left; after the grace period the rest are cut.
 */
function drain(server: http.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const cut = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearInterval(sweep);
      clearTimeout(cut);
      resolve();
    });
    server.closeIdleConnections();
  });
}

function listen(server: http.Server, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address() as AddressInfo;
      // An IPv6 literal needs brackets in a URL.
      resolve(`http://${host.includes(':') ? `[${host}]` : host}:${address.port}`);
    });
  });
}
