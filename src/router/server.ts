/** The router: the traffic port (weighted proxy) and the admin port (API), two HTTP servers. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { adminHandler } from './admin-api';
import { Proxy, sendJson } from './proxy';
import { RouteStore } from './route-store';
import { RouterStats } from './stats';

export interface RouterOptions {
  trafficHost?: string;
  /** 0 = an ephemeral port. */
  trafficPort: number;
  adminHost?: string;
  adminPort: number;
  token: string;
  /** Where the route table is persisted; absent = memory only. */
  statePath?: string;
}

export interface RunningRouter {
  trafficUrl: string;
  adminUrl: string;
  close(): Promise<void>;
}

export async function startRouter(opts: RouterOptions): Promise<RunningRouter> {
  if (!opts.token) throw new Error('the router needs an admin token');
  const routes = new RouteStore(opts.statePath);
  const stats = new RouterStats();
  const proxy = new Proxy(routes, stats);
  const traffic = http.createServer((req, res) => {
    proxy.handle(req, res).catch((err: Error) => {
      if (!res.headersSent) sendJson(res, 500, { error: err.message });
      else res.destroy();
    });
  });
  traffic.keepAliveTimeout = 65_000;
  const admin = http.createServer((req, res) => {
    adminHandler(opts.token, routes, stats)(req, res).catch((err: Error) => sendJson(res, 500, { error: err.message }));
  });
  const trafficUrl = await listen(traffic, opts.trafficHost ?? '127.0.0.1', opts.trafficPort);
  const adminUrl = await listen(admin, opts.adminHost ?? '127.0.0.1', opts.adminPort);
  return {
    trafficUrl,
    adminUrl,
    close: async () => {
      admin.closeIdleConnections();
      traffic.closeIdleConnections();
      await Promise.all([new Promise((r) => admin.close(r)), new Promise((r) => traffic.close(r))]);
      await proxy.close();
    },
  };
}

function listen(server: http.Server, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address() as AddressInfo;
      resolve(`http://${host}:${address.port}`);
    });
  });
}
