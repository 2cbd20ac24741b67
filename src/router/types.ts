/**
 * The router's admin API contract, shared by the router server and its client.
 *
 * Traffic port:   http://<host>:<trafficPort>/<service>/<path...>  -> a replica's /<path...>
 * Admin port:     http://127.0.0.1:<adminPort>, every request needs `Authorization: Bearer <token>`
 *   PUT  /v1/services/:service/backends   body { backends, order? } -> 200 ServiceRoute & { applied }
 *   GET  /v1/services/:service            -> 200 ServiceRoute & { stats } | 404
 *   GET  /v1/services                      -> 200 { services: Record<string, ServiceRoute> }
 *   GET  /v1/services/:service/inflight?replica=<id> -> 200 { inflight: number }
 *   DELETE /v1/services/:service          -> 204
 *   GET  /healthz (no auth)                -> 200 { ok: true }
 */
export interface Backend {
  replicaId: string;
  version: number;
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** Relative weight; 0 = out of rotation (draining). */
  weight: number;
}

/**
 * An ordered write's place: its writer (one rollout) and the writer's sequence number. The
 * router keeps only the newest write of a writer, so a rollout's traffic changes may ride on
 * activities that run, or are retried, out of order (an unordered write always applies).
 */
export interface TrafficOrder {
  writer: string;
  seq: number;
}

export interface ServiceRoute {
  backends: Backend[];
  /** The last ordered write the table took. */
  order?: TrafficOrder;
}

export interface RouteTable {
  services: Record<string, ServiceRoute>;
}

/** One version's statistics in `GET /v1/services/:service` (quantiles estimated from the histogram buckets). */
export interface VersionStats {
  requests: number;
  errors5xx: number;
  connectErrors: number;
  inflight: number;
  latencyMs: { p50: number | null; p99: number | null };
  ttfbMs: { p50: number | null; p99: number | null };
}
