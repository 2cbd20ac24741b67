/**
 * `rollout router`: the router (native/router) configured from the environment, in the
 * foreground: its log on stdout, SIGTERM/SIGINT passed on (it drains requests in flight, then
 * exits), this process exits with it.
 *
 * Environment: ROUTER_TOKEN_FILE (a file holding the admin token) or ROUTER_TOKEN (one is required), ROUTER_TRAFFIC_PORT (default 8080), ROUTER_ADMIN_PORT
 * (default 8081), ROUTER_HOST (traffic interface, default 127.0.0.1), ROUTER_ADMIN_HOST (default
 * 127.0.0.1), ROUTER_STATE_PATH (route table file; absent = memory only), ROUTER_CLOSE_GRACE_MS
 * (default 10000). The router checks them and says what is wrong.
 *
 * SIGUSR2 hands the router over to a new process of the router binary as found now
 * (ROLLOUT_ROUTER_BIN, or native/router's build: rebuilt in place, an upgrade) with no request
 * dropped; this command then follows the new process. ROUTER_HANDOVER_SOCKET defaults to one of
 * its own in the temporary directory.
 */
import os from 'node:os';
import path from 'node:path';
import { launchRouter, RouterStartError, type RunningRouter } from './server';
import { readRouterTokenFile } from './token-file';

export async function runRouterFromEnv(env: NodeJS.ProcessEnv = process.env, opts: { echo?: boolean } = {}): Promise<RunningRouter> {
  // The router reads its own settings: every ROUTER_* variable is passed on, nothing else.
  const routerEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (name.startsWith('ROUTER_') && value !== undefined) routerEnv[name] = value;
  // The binary reads ROUTER_TOKEN only: a token file is read here and handed to it in its environment alone.
  const file = env.ROUTER_TOKEN_FILE;
  delete routerEnv.ROUTER_TOKEN_FILE;
  if (file) {
    const read = readRouterTokenFile(file);
    if (!read.ok) throw new RouterStartError(`ROUTER_TOKEN_FILE ${file}: ${read.why}`, 2);
    routerEnv.ROUTER_TOKEN = read.token;
  }
  return launchRouter(routerEnv, { echo: opts.echo });
}

/** The CLI command: runs until the router stops (and was not handed over); its exit code. */
export async function runRouterCommand(): Promise<number> {
  // The handlers come first: the router's "router ready" line is echoed while it starts, and a
  // SIGTERM sent on seeing it must reach the router, not end this process with the default action.
  const running: { router?: RunningRouter; stopAsked: boolean; handingOver?: Promise<unknown> } = { stopAsked: false };
  const stop = () => {
    running.stopAsked = true;
    void running.router?.close();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const env = { ...process.env };
  env.ROUTER_HANDOVER_SOCKET ||= path.join(os.tmpdir(), `rollout-router-${process.pid}.sock`);
  const router = await runRouterFromEnv(env, { echo: true });
  running.router = router;
  if (running.stopAsked) void router.close();
  process.on('SIGUSR2', () => {
    const old = running.router;
    if (running.stopAsked || !old || running.handingOver) return;
    running.handingOver = old.handover({ echo: true }).then(
      (next) => {
        running.router = next;
        running.handingOver = undefined;
        process.stderr.write(`rollout router: handed over from pid ${old.pid} (${old.build}) to pid ${next.pid} (${next.build})\n`);
        if (running.stopAsked) void next.close();
      },
      (err: Error) => {
        running.handingOver = undefined;
        process.stderr.write(`rollout router: handover failed, pid ${old.pid} serves on: ${err.message}\n`);
      },
    );
  });
  for (;;) {
    const current: RunningRouter = running.router;
    const { code, signal } = await current.exited;
    // The old process of a handover exits once the new one is ready: follow the new one.
    await running.handingOver;
    if (running.router !== current) continue;
    return code ?? (signal ? 1 : 0);
  }
}
