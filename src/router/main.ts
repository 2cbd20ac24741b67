/** `rollout router`: the router configured from the environment, stopped gracefully on SIGTERM/SIGINT. */
import pino from 'pino';
import { startRouter, type RunningRouter } from './server';

/** How long a stopping router lets requests in flight (token streams included) finish. */
const STOP_GRACE_MS = 10_000;

/**
 * Environment: ROUTER_TOKEN (required), ROUTER_TRAFFIC_PORT (default 8080), ROUTER_ADMIN_PORT
 * (default 8081), ROUTER_HOST (traffic interface, default 127.0.0.1), ROUTER_ADMIN_HOST (default
 * 127.0.0.1), ROUTER_STATE_PATH (route table file; absent = memory only).
 */
export async function runRouterFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<RunningRouter> {
  const logger = pino({ name: 'router' });
  const token = env.ROUTER_TOKEN;
  if (!token) throw new Error('ROUTER_TOKEN is not set: the admin API needs a bearer token');
  const router = await startRouter({
    trafficHost: env.ROUTER_HOST || '127.0.0.1',
    trafficPort: port(env, 'ROUTER_TRAFFIC_PORT', 8080),
    adminHost: env.ROUTER_ADMIN_HOST || '127.0.0.1',
    adminPort: port(env, 'ROUTER_ADMIN_PORT', 8081),
    token,
    statePath: env.ROUTER_STATE_PATH || undefined,
    logger,
    closeGraceMs: STOP_GRACE_MS,
  });
  logger.info({ trafficUrl: router.trafficUrl, adminUrl: router.adminUrl, statePath: env.ROUTER_STATE_PATH ?? null }, 'router ready');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return; // a second Ctrl-C while draining must not start a second close
    stopping = true;
    logger.info({ signal, graceMs: STOP_GRACE_MS }, 'router stopping: no new connections, letting requests in flight finish');
    router.close().then(
      () => {
        logger.info('router stopped');
        process.exit(0);
      },
      (err: Error) => {
        logger.error({ err }, 'router did not stop cleanly');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return router;
}

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new Error(`${name} must be a port number (0-65535), got "${raw}"`);
  return value;
}
