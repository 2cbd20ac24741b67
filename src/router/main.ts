/**
 * `rollout router`: the router (native/router) configured from the environment, in the
 * foreground: its log on stdout, SIGTERM/SIGINT passed on (it drains requests in flight, then
 * exits), this process exits with it.
 *
 * Environment: ROUTER_TOKEN (required), ROUTER_TRAFFIC_PORT (default 8080), ROUTER_ADMIN_PORT
 * (default 8081), ROUTER_HOST (traffic interface, default 127.0.0.1), ROUTER_ADMIN_HOST (default
 * 127.0.0.1), ROUTER_STATE_PATH (route table file; absent = memory only), ROUTER_CLOSE_GRACE_MS
 * (default 10000). The router checks them and says what is wrong.
 */
import { launchRouter, type RunningRouter } from './server';

export async function runRouterFromEnv(env: NodeJS.ProcessEnv = process.env, opts: { echo?: boolean } = {}): Promise<RunningRouter> {
  // The router reads its own settings: every ROUTER_* variable is passed on, nothing else.
  const routerEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (name.startsWith('ROUTER_') && value !== undefined) routerEnv[name] = value;
  return launchRouter(routerEnv, { echo: opts.echo });
}

/** The CLI command: runs until the router stops; its exit code. */
export async function runRouterCommand(): Promise<number> {
  // The handlers come first: the router's "router ready" line is echoed while it starts, and a
  // SIGTERM sent on seeing it must reach the router, not end this process with the default action.
  const running: { router?: RunningRouter; stopAsked: boolean } = { stopAsked: false };
  const stop = () => {
    running.stopAsked = true;
    void running.router?.close();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const router = await runRouterFromEnv(process.env, { echo: true });
  running.router = router;
  if (running.stopAsked) void router.close();
  const { code, signal } = await router.exited;
  return code ?? (signal ? 1 : 0);
}
