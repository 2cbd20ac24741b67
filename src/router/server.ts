/**
 * The router from TypeScript: starts the data plane (native/router, a Rust binary: the traffic
 * port's weighted proxy and the admin API) as a child process and waits until both ports listen.
 * Tests, the bench and `rollout router` start it this way; the dev stack runs the binary directly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import type pino from 'pino';
import { routerBinary } from './binary';

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
  /** Gets the router's log lines (JSON, pino's shape); absent = they are dropped. */
  logger?: pino.Logger;
  /** How long close() lets requests in flight finish before cutting them (default 10 s). */
  closeGraceMs?: number;
  /** How long a replica may take to send its response headers before the client gets 504 (default 300 s; 0 = no limit). */
  upstreamTimeoutMs?: number;
}

export interface RunningRouter {
  trafficUrl: string;
  adminUrl: string;
  pid: number;
  /** Resolves when the router process has exited, for whatever reason. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops accepting, lets requests in flight (streams too) finish within the grace period, then resolves. */
  close(): Promise<void>;
}

export async function startRouter(opts: RouterOptions): Promise<RunningRouter> {
  const env: Record<string, string> = {
    ROUTER_TOKEN: opts.token,
    ROUTER_HOST: opts.trafficHost ?? '127.0.0.1',
    ROUTER_TRAFFIC_PORT: String(opts.trafficPort),
    ROUTER_ADMIN_HOST: opts.adminHost ?? '127.0.0.1',
    ROUTER_ADMIN_PORT: String(opts.adminPort),
  };
  if (opts.statePath) env.ROUTER_STATE_PATH = opts.statePath;
  if (opts.closeGraceMs !== undefined) env.ROUTER_CLOSE_GRACE_MS = String(opts.closeGraceMs);
  if (opts.upstreamTimeoutMs !== undefined) env.ROUTER_UPSTREAM_TIMEOUT_MS = String(opts.upstreamTimeoutMs);
  return launchRouter(env, { logger: opts.logger });
}

/**
 * Starts the router binary with the given ROUTER_* environment. Resolves once it logged
 * "router ready"; rejects with its own message (a bad setting, an unreadable state file, a
 * port in use) if it exits first. The child stops by itself if this process goes away
 * (ROUTER_EXIT_WITH_STDIN: its stdin is a pipe from here).
 */
export function launchRouter(routerEnv: Record<string, string>, opts: { logger?: pino.Logger; echo?: boolean } = {}): Promise<RunningRouter> {
  const binary = routerBinary();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...routerEnv, ROUTER_EXIT_WITH_STDIN: '1' };
  const child = spawn(binary, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let ready = false;
  child.stderr.on('data', (chunk: Buffer) => {
    if (!ready) stderr += chunk.toString();
    // Before it is ready, what it says becomes the error below (not said twice).
    else if (opts.echo) process.stderr.write(chunk);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (opts.echo) process.stdout.write(`${line}\n`);
      const entry = parseLogLine(line);
      if (opts.logger && entry) forward(opts.logger, entry);
      if (!ready && entry?.msg === 'router ready' && typeof entry.trafficUrl === 'string' && typeof entry.adminUrl === 'string') {
        ready = true;
        resolve(running(child, exited, entry.trafficUrl, entry.adminUrl));
      }
    });
    child.once('error', (err) => reject(new Error(`could not start the router (${binary}): ${err.message}`)));
    child.once('exit', (code, signal) => {
      if (ready) return;
      const said = stderr.trim().replace(/^rollout-router: /, '');
      reject(new RouterStartError(said || `the router exited (${signal ?? code}) before it was ready`, code));
    });
  });
}

/** The router stopped before it was ready; exit code 2 = a bad setting or state file. */
export class RouterStartError extends Error {
  override name = 'RouterStartError';
  constructor(
    message: string,
    readonly exitCode: number | null,
  ) {
    super(message);
  }
}

function running(child: ChildProcess, exited: RunningRouter['exited'], trafficUrl: string, adminUrl: string): RunningRouter {
  let closed: Promise<void> | undefined;
  return {
    trafficUrl,
    adminUrl,
    pid: child.pid ?? 0,
    exited,
    close: () => {
      if (!closed) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        closed = exited.then(() => undefined);
      }
      return closed;
    },
  };
}

interface LogEntry {
  level?: number;
  msg?: string;
  [field: string]: unknown;
}

function parseLogLine(line: string): LogEntry | undefined {
  try {
    const value: unknown = JSON.parse(line);
    return value && typeof value === 'object' ? (value as LogEntry) : undefined;
  } catch {
    return undefined;
  }
}

/** A router log line re-logged at its own level (pino's numbers: 40 warn, 50 error). */
function forward(logger: pino.Logger, { level = 30, msg = '', time: _time, pid: _pid, name: _name, ...fields }: LogEntry): void {
  if (level >= 50) logger.error(fields, msg);
  else if (level >= 40) logger.warn(fields, msg);
  else logger.info(fields, msg);
}
