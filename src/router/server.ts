/**
 * The router from TypeScript: starts the data plane (native/router, a Rust binary: the traffic
 * port's weighted proxy and the admin API) as a child process and waits until both ports listen.
 * Tests, the bench and `rollout router` start it this way; the dev stack keeps one running with
 * RouterSupervisor (supervisor.ts).
 *
 * Handover (a restart, or an upgrade to another build, with no request dropped): `handover()`
 * starts a new process with ROUTER_TAKEOVER=1, which takes the listening sockets, the route
 * table and the counters over from this one through ROUTER_HANDOVER_SOCKET; this one then stops
 * accepting, lets its requests in flight (streams included) finish and exits by itself
 * (native/router/src/handover.rs).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
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
  /** A Unix socket path (at most 96 bytes) through which a new process can take this one over: needed for `handover()`. */
  handoverSocket?: string;
  /** A stopping router closes a kept-alive connection once it has been idle this long (default 2 s). */
  drainIdleMs?: number;
  /** How long a router that was taken over lets its requests in flight finish (default 10 minutes). */
  handoverGraceMs?: number;
}

export interface LaunchOptions {
  /** Gets the router's log lines (JSON, pino's shape). */
  logger?: pino.Logger;
  /** Its stdout and stderr echoed on ours (`rollout router`). */
  echo?: boolean;
  /** Its stdout and stderr appended to this file (the dev stack's router.log). */
  logFile?: string;
  /** Another build than routerBinary()'s. */
  binary?: string;
  /** In a process group of its own (the dev stack: a Ctrl-C in the terminal reaches only the stack). */
  detached?: boolean;
}

export interface RunningRouter {
  trafficUrl: string;
  adminUrl: string;
  pid: number;
  /** The build it reports (`0.1.0`, or `0.1.0+<id>` when built with ROUTER_BUILD_ID=<id>). */
  build: string;
  /** The binary it runs. */
  binary: string;
  /** Its ROUTER_* environment. */
  env: Record<string, string>;
  /** Resolves when the router process has exited, for whatever reason. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops accepting, lets requests in flight (streams too) finish within the grace period, then resolves. */
  close(): Promise<void>;
  /**
   * Starts a new router process (this binary, or `binary`) that takes this one over: resolves
   * with it once it serves both ports; this one then drains and exits by itself (see `exited`).
   * Rejects (and this one serves on) if the new process cannot take over.
   */
  handover(opts?: Omit<LaunchOptions, 'detached'>): Promise<RunningRouter>;
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
  if (opts.handoverSocket) env.ROUTER_HANDOVER_SOCKET = opts.handoverSocket;
  if (opts.drainIdleMs !== undefined) env.ROUTER_DRAIN_IDLE_MS = String(opts.drainIdleMs);
  if (opts.handoverGraceMs !== undefined) env.ROUTER_HANDOVER_GRACE_MS = String(opts.handoverGraceMs);
  return launchRouter(env, { logger: opts.logger });
}

/**
 * Starts the router binary with the given ROUTER_* environment. Resolves once it logged
 * "router ready"; rejects with its own message (a bad setting, an unreadable state file, a
 * port in use) if it exits first. The child stops by itself if this process goes away
 * (ROUTER_EXIT_WITH_STDIN: its stdin is a pipe from here).
 */
export function launchRouter(routerEnv: Record<string, string>, opts: LaunchOptions = {}): Promise<RunningRouter> {
  const binary = opts.binary ?? routerBinary();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, ...routerEnv, ROUTER_EXIT_WITH_STDIN: '1' };
  const child = spawn(binary, [], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: opts.detached });
  const logFd = opts.logFile === undefined ? undefined : fs.openSync(opts.logFile, 'a');
  let stderr = '';
  let ready = false;
  child.stderr.on('data', (chunk: Buffer) => {
    if (logFd !== undefined) fs.writeSync(logFd, chunk);
    if (!ready) stderr += chunk.toString();
    // Before it is ready, what it says becomes the error below (not said twice).
    else if (opts.echo) process.stderr.write(chunk);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    }),
  );
  // The log file is closed once both pipes are done (after the exit, the last lines may still come).
  let pipesOpen = 2;
  const pipeDone = () => {
    if (--pipesOpen === 0 && logFd !== undefined) fs.closeSync(logFd);
  };
  child.stdout.once('close', pipeDone);
  child.stderr.once('close', pipeDone);
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      if (logFd !== undefined) fs.writeSync(logFd, `${line}\n`);
      if (opts.echo) process.stdout.write(`${line}\n`);
      const entry = parseLogLine(line);
      if (opts.logger && entry) forward(opts.logger, entry);
      if (!ready && entry?.msg === 'router ready' && typeof entry.trafficUrl === 'string' && typeof entry.adminUrl === 'string') {
        ready = true;
        const build = typeof entry.build === 'string' ? entry.build : 'unknown';
        const baseEnv = Object.fromEntries(Object.entries(routerEnv).filter(([name]) => name !== 'ROUTER_TAKEOVER'));
        resolve(running(child, exited, { trafficUrl: entry.trafficUrl, adminUrl: entry.adminUrl, build, binary, env: baseEnv, launch: opts }));
      }
    });
    child.once('error', (err) => reject(new Error(`could not start the router (${binary}): ${err.message}`)));
    child.once('exit', (code, signal) => {
      if (ready) return;
      // 'exit' can come before the last of its stderr (its message): wait for the pipe to close
      // (a second at most, should something else hold it open).
      const drained = new Promise<void>((resolve) => {
        if (child.stderr.closed) resolve();
        else child.stderr.once('close', () => resolve());
        setTimeout(resolve, 1000).unref();
      });
      void drained.then(() => {
        const said = stderr.trim().replace(/^rollout-router: /, '');
        reject(new RouterStartError(said || `the router exited (${signal ?? code}) before it was ready`, code));
      });
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

function running(
  child: ChildProcess,
  exited: RunningRouter['exited'],
  info: { trafficUrl: string; adminUrl: string; build: string; binary: string; env: Record<string, string>; launch: LaunchOptions },
): RunningRouter {
  let closed: Promise<void> | undefined;
  const { launch, ...rest } = info;
  return {
    ...rest,
    pid: child.pid ?? 0,
    exited,
    close: () => {
      if (!closed) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        closed = exited.then(() => undefined);
      }
      return closed;
    },
    handover: (opts = {}) => {
      if (!info.env.ROUTER_HANDOVER_SOCKET) return Promise.reject(new Error('this router has no ROUTER_HANDOVER_SOCKET: nothing can take it over'));
      // The binary is looked up again: a build replaced in place (cargo build) is an upgrade.
      return launchRouter({ ...info.env, ROUTER_TAKEOVER: '1' }, { ...launch, ...opts, binary: opts.binary ?? routerBinary() });
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
