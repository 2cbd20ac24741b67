/** `rollout router`: the router configured from the environment, stopped gracefully on SIGTERM/SIGINT. */
import pino from 'pino';
import { startRouter } from './server';

export async function runRouterFromEnv(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const logger = pino({ name: 'router' });
  const token = env.ROUTER_TOKEN;
  if (!token) throw new Error('ROUTER_TOKEN is not set');
  const router = await startRouter({
    trafficHost: env.ROUTER_HOST ?? '127.0.0.1',
    trafficPort: Number(env.ROUTER_TRAFFIC_PORT ?? 8080),
    adminPort: Number(env.ROUTER_ADMIN_PORT ?? 8081),
    token,
    statePath: env.ROUTER_STATE_PATH,
  });
  logger.info({ trafficUrl: router.trafficUrl, adminUrl: router.adminUrl }, 'router ready');
  const stop = (signal: string) => {
    logger.info({ signal }, 'router stopping');
    const timer = setTimeout(() => process.exit(0), 10_000);
    void router.close().then(() => {
      clearTimeout(timer);
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
