/**
 * The local provider: each replica is a process group on this machine, started with
 * `/bin/sh -c <run>` on a free loopback port.
 *
 * Replicas outlive the worker that started them (detached, own process group, output to a log
 * file, unref'd), and records on disk are the truth: a restarted worker reads them and finds
 * its replicas running, so a retried launch returns the same process and a terminate works
 * from any worker. A record is written synchronously as soon as spawn returns the pid, so a
 * crash cannot leave a process nobody knows of.
 *
 * GPU accounting. `gpus` set (even 0): strict — that many GPUs, indices 0…n-1. `gpus` unset:
 * nvidia-smi decides; if it finds GPUs, strict over those; if it finds none, lenient CPU mode:
 * replicas asking for GPUs run without them (with a warning, once), so the product works on
 * laptops and CI machines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { replicaEnvironment, type ReplicaUser } from './replica-identity';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { allocateGpus, detectGpus } from '../gpu-inventory';
import {
  ProviderError,
  type GpuInventory,
  type LaunchRequest,
  type Provider,
  type ReplicaDescription,
  type ReplicaHandle,
} from '../types';
import { readTail } from './log-files';
import { KeyedMutex, withFileLock } from './locks';
import { pickFreePort } from './ports';
import { groupLeadersWithEnv, hasLiveGroupMember, liveness, signalGroup, startTimeOf } from './proc';
import { REPLICA_ID_PATTERN, ReplicaRecords, type LocalReplicaRecord } from './records';

export interface LocalProviderOptions {
  /** Records in `<stateDir>/replicas`, logs in `<stateDir>/logs`. */
  stateDir: string;
  /** GPUs this provider may hand out (strict accounting); unset = detect with nvidia-smi. */
  gpus?: number;
  logger?: pino.Logger;
  /** Address replicas are reached on; default 127.0.0.1. */
  host?: string;
  /** How long terminate waits after SIGTERM before SIGKILL; default 30 s. */
  terminateGraceMs?: number;
  /**
   * The user replicas run as (see replica-identity.ts); absent: the worker's own. Needs root.
   * Its HOME is `<stateDir>/home`, made for it.
   */
  replicaUser?: ReplicaUser;
}

interface Inventory {
  ids: number[];
  strict: boolean;
}

/** After SIGKILL a process may still take a moment (e.g. in uninterruptible I/O). */
const KILL_WAIT_MS = 10_000;
const POLL_MS = 100;
/** Log lines put into `exitInfo`, so a ReplicaDied failure says why the process died. */
const EXIT_LOG_LINES = 10;
const EXIT_LOG_CHARS = 2000;

/**
 * spawn errors that the same launch would meet again (too large an environment, no /bin/sh, not
 * allowed to run it): not retried. Others (EAGAIN, ENOMEM, EMFILE: the host is short of
 * processes, memory or files for a moment) are.
 */
const PERMANENT_SPAWN_ERRORS = new Set(['E2BIG', 'ENOENT', 'EACCES', 'ENOEXEC', 'ENAMETOOLONG']);

export class LocalProvider implements Provider {
  readonly name = 'local';
  private readonly records: ReplicaRecords;
  private readonly logDir: string;
  private readonly allocationLockPath: string;
  private readonly host: string;
  private readonly graceMs: number;
  private readonly logger: pino.Logger;
  private readonly configuredGpus?: number;
  private readonly replicaUser?: ReplicaUser;
  private readonly stateDir: string;
  private detected?: Promise<number[]>;
  private warnedNoGpu = false;
  /** Serializes launch/terminate of one replica id within this process. */
  private readonly byId = new KeyedMutex();
  /** Serializes GPU allocation + port choice + spawn, so two launches never take the same GPU. */
  private readonly allocation = new KeyedMutex();
  /** Ports handed out by this process and not yet released by a terminate. */
  private readonly portsHandedOut = new Set<number>();
  /** Children this process spawned, kept so their exit is observed (reaped) and reported. */
  private readonly children = new Map<string, ChildProcess>();
  private readonly exits = new Map<string, { pid: number; info: string; at: number }>();
  /** Called with a replica id when a child of ours exits (whenAnyStops). */
  private readonly stopListeners = new Set<(replicaId: string) => void>();

  constructor(opts: LocalProviderOptions) {
    if (opts.gpus !== undefined && (!Number.isInteger(opts.gpus) || opts.gpus < 0)) {
      throw new ProviderError(`gpus must be a non-negative integer, got ${opts.gpus}`, 'InvalidRequest', false);
    }
    this.configuredGpus = opts.gpus;
    this.records = new ReplicaRecords(path.join(opts.stateDir, 'replicas'));
    this.logDir = path.join(opts.stateDir, 'logs');
    fs.mkdirSync(this.logDir, { recursive: true });
    this.allocationLockPath = path.join(opts.stateDir, 'allocation.lock');
    this.host = opts.host ?? '127.0.0.1';
    this.graceMs = opts.terminateGraceMs ?? 30_000;
    this.logger = opts.logger ?? pino({ name: 'local-provider' });
    this.replicaUser = opts.replicaUser;
    this.stateDir = opts.stateDir;
  }

  /** HOME for replicas of another user: a directory of their own under the state dir. */
  private replicaHome(): string {
    const home = path.join(this.stateDir, 'home');
    if (!fs.existsSync(home)) {
      fs.mkdirSync(home, { recursive: true, mode: 0o700 });
      if (this.replicaUser) fs.chownSync(home, this.replicaUser.uid, this.replicaUser.gid);
    }
    return home;
  }

  async launch(req: LaunchRequest): Promise<ReplicaHandle> {
    validate(req);
    return this.byId.run(req.replicaId, () =>
      withFileLock(this.records.lockPathOf(req.replicaId), () => this.launchLocked(req)),
    );
  }

  async describe(replicaId: string): Promise<ReplicaDescription> {
    const record = REPLICA_ID_PATTERN.test(replicaId) ? this.records.read(replicaId) : undefined;
    if (!record) {
      return { replicaId, service: '', version: 0, endpoint: '', gpuIds: [], externalId: '', state: 'missing' };
    }
    return this.describeRecord(record);
  }

  async terminate(replicaId: string): Promise<void> {
    // An id that cannot be a file name was never launched: nothing to terminate.
    if (!REPLICA_ID_PATTERN.test(replicaId)) return;
    await this.byId.run(replicaId, () =>
      withFileLock(this.records.lockPathOf(replicaId), async () => {
        const record = this.records.read(replicaId);
        if (!record) return this.stopCutShortLaunch(replicaId);
        await this.stopGroup(record);
        this.records.remove(replicaId);
        this.forget(record);
        this.logger.info({ replicaId, pid: record.pid }, 'replica terminated');
      }),
    );
  }

  async list(service?: string): Promise<ReplicaDescription[]> {
    const records = this.records.all().filter((r) => service === undefined || r.service === service);
    return Promise.all(records.map((r) => this.describeRecord(r)));
  }

  /** Every replica the state dir knows of, running or not. */
  async describeAll(): Promise<ReplicaDescription[]> {
    return this.list();
  }

  async gpus(): Promise<GpuInventory> {
    const inventory = await this.inventory();
    const held = new Set(this.liveRecords().flatMap((r) => r.gpuIds));
    const free = inventory.ids.filter((id) => !held.has(id)).length;
    return { total: inventory.ids.length, free, strict: inventory.strict };
  }

  /** The last `lines` lines of the replica's output ('' when it has none). */
  async logTail(replicaId: string, lines = 20): Promise<string> {
    if (!REPLICA_ID_PATTERN.test(replicaId)) return '';
    return readTail(this.logPathOf(replicaId), lines);
  }

  logPathOf(replicaId: string): string {
    return path.join(this.logDir, `${replicaId}.log`);
  }

  private async launchLocked(req: LaunchRequest): Promise<ReplicaHandle> {
    const existing = this.records.read(req.replicaId);
    if (existing) {
      if (liveness(existing.pid, existing.startTime) === 'alive') {
        if (existing.run !== req.run || existing.version !== req.version) {
          this.logger.warn({ replicaId: req.replicaId }, 'launch of a running replica id with a different spec: returning the running one');
        }
        return toHandle(existing);
      }
      // Dead: clear what is left of it (stray group members, the record) and start afresh under the same id.
      this.logger.info({ replicaId: req.replicaId, pid: existing.pid }, 'replica record found but its process is gone: relaunching');
      await this.stopGroup(existing);
      this.records.remove(req.replicaId);
      this.forget(existing);
    }
    return this.allocation.run('host', () => withFileLock(this.allocationLockPath, async () => this.adoptCutShortLaunch(req) ?? this.spawnReplica(req)));
  }

  /**
   * A launch cut short between its spawn and its record (the worker killed) left an intent: the
   * process it may have started is found by its REPLICA_ID and PORT and recorded now, so a retry
   * never starts a second one. Undefined when there was no such launch, or it started nothing.
   */
  private adoptCutShortLaunch(req: LaunchRequest): ReplicaHandle | undefined {
    const intent = this.records.readIntent(req.replicaId);
    if (!intent) return undefined;
    const [pid, ...extra] = groupLeadersWithEnv({ REPLICA_ID: req.replicaId, PORT: String(intent.port) });
    for (const other of extra) signalGroup(other, 'SIGKILL'); // cannot happen with one intent per id; never leave two
    if (pid === undefined) {
      this.records.removeIntent(req.replicaId);
      return undefined;
    }
    const record = this.recordOf(req, pid, intent.port, intent.gpuIds, intent.createdAt);
    this.records.writeSync(record);
    this.records.removeIntent(req.replicaId);
    this.portsHandedOut.add(intent.port);
    this.logger.info({ replicaId: req.replicaId, pid, port: intent.port }, 'replica found running after a launch that was cut short: recorded, not started again');
    return toHandle(record);
  }

  /** Stops a process a cut-short launch left without a record (terminate of a replica that has only an intent). */
  private async stopCutShortLaunch(replicaId: string): Promise<void> {
    const intent = this.records.readIntent(replicaId);
    if (!intent) return;
    for (const pid of groupLeadersWithEnv({ REPLICA_ID: replicaId, PORT: String(intent.port) })) {
      await this.stopGroup({ replicaId, pid, pgid: pid });
    }
    this.records.removeIntent(replicaId);
  }

  /** The record of replica `req` running as process group `pid` (it leads its own group). */
  private recordOf(req: LaunchRequest, pid: number, port: number, gpuIds: number[], createdAt: string): LocalReplicaRecord {
    const endpoint = `http://${this.host.includes(':') ? `[${this.host}]` : this.host}:${port}`;
    return { replicaId: req.replicaId, service: req.service, version: req.version, pid, pgid: pid, startTime: startTimeOf(pid), port, endpoint, gpuIds, run: req.run, createdAt };
  }

  private async spawnReplica(req: LaunchRequest): Promise<ReplicaHandle> {
    const inventory = await this.inventory();
    const gpuIds = this.allocate(req, inventory);
    const port = await pickFreePort(this.host, new Set([...this.portsHandedOut, ...this.records.all().map((r) => r.port)]));

    // Only what the spec gives it, its identity and a minimal base: never the worker's own
    // environment (Temporal address, router admin URL, state dir, credentials). Strict GPU mode:
    // the replica sees exactly its GPUs, and none when it holds none (an empty list hides them
    // all), so it cannot use a GPU another replica was given.
    const env = replicaEnvironment({
      workerEnv: process.env,
      specEnv: req.env,
      home: this.replicaUser ? this.replicaHome() : process.env.HOME,
      identity: { PORT: String(port), REPLICA_ID: req.replicaId, SERVICE_NAME: req.service, SERVICE_VERSION: String(req.version) },
      cudaVisibleDevices: inventory.strict ? gpuIds.join(',') : undefined,
    });

    const logPath = this.logPathOf(req.replicaId);
    const fd = fs.openSync(logPath, 'a');
    this.records.writeIntentSync({ replicaId: req.replicaId, port, gpuIds, createdAt: new Date().toISOString() });
    let child: ChildProcess;
    try {
      fs.writeSync(fd, `--- ${new Date().toISOString()} launching ${req.replicaId} (${req.service} v${req.version}) on port ${port}: ${req.run}\n`);
      child = spawn('/bin/sh', ['-c', req.run], {
        cwd: process.cwd(),
        env,
        detached: true, // own process group (pgid = pid): survives the worker, killed as a group
        stdio: ['ignore', fd, fd],
        ...(this.replicaUser ? { uid: this.replicaUser.uid, gid: this.replicaUser.gid } : {}),
      });
    } catch (err) {
      // Node refuses the arguments themselves (a NUL byte in a value): no retry can fix that.
      // Its message quotes the value ("Received '…'"), which may be a secret: cut there.
      this.records.removeIntent(req.replicaId);
      const why = (err as Error).message.replace(/\.?\s*Received[\s\S]*$/, '');
      throw new ProviderError(`could not start ${req.replicaId}: ${why}`, 'InvalidRequest', false);
    } finally {
      fs.closeSync(fd); // the child holds its own copy
    }
    const pid = child.pid;
    if (pid === undefined) {
      this.records.removeIntent(req.replicaId);
      const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => child.once('error', resolve));
      const permanent = error?.code !== undefined && PERMANENT_SPAWN_ERRORS.has(error.code);
      throw new ProviderError(
        `could not start /bin/sh for ${req.replicaId}: ${error?.message ?? 'unknown error'}${error?.code === 'E2BIG' ? ' (the environment and command are larger than the kernel allows)' : ''}`,
        permanent ? 'InvalidRequest' : 'ProviderError',
        !permanent,
      );
    }

    const record = this.recordOf(req, pid, port, gpuIds, new Date().toISOString());
    try {
      this.records.writeSync(record);
    } catch (err) {
      // Without a record nobody could find this process again: do not let it run.
      signalGroup(pid, 'SIGKILL');
      this.records.removeIntent(req.replicaId);
      throw new ProviderError(`could not record replica ${req.replicaId}: ${(err as Error).message}`, 'ProviderError', true);
    }

    this.records.removeIntent(req.replicaId);
    this.portsHandedOut.add(port);
    this.track(req.replicaId, child);
    this.logger.info({ replicaId: req.replicaId, pid, port, gpuIds }, 'replica launched');
    return toHandle(record);
  }

  private allocate(req: LaunchRequest, inventory: Inventory): number[] {
    if (!inventory.strict) {
      if (req.gpus > 0 && !this.warnedNoGpu) {
        this.warnedNoGpu = true;
        this.logger.warn('no GPU found: running replicas without accelerators');
      }
      return [];
    }
    const total = inventory.ids.length;
    if (req.gpus > total) {
      throw new ProviderError(`${req.replicaId} needs ${req.gpus} GPUs but this host has ${total}`, 'InvalidRequest', false);
    }
    const gpuIds = allocateGpus(inventory.ids, this.liveRecords().map((r) => r.gpuIds), req.gpus);
    if (!gpuIds) {
      const free = total - new Set(this.liveRecords().flatMap((r) => r.gpuIds)).size;
      throw new ProviderError(`${req.replicaId} needs ${req.gpus} GPUs, ${free} of ${total} free`, 'CapacityError', true);
    }
    return gpuIds;
  }

  /** Detection runs once per provider: GPUs do not come and go while a worker runs. */
  private async inventory(): Promise<Inventory> {
    if (this.configuredGpus !== undefined) {
      return { ids: Array.from({ length: this.configuredGpus }, (_, i) => i), strict: true };
    }
    this.detected ??= detectGpus();
    const ids = await this.detected;
    return { ids, strict: ids.length > 0 };
  }

  private liveRecords(): LocalReplicaRecord[] {
    return this.records.all().filter((r) => liveness(r.pid, r.startTime) === 'alive');
  }

  /**
   * Observes the exit of a child we spawned: Node reaps it (no zombie while we live) and we
   * keep its exit code for describe(). Children of an earlier worker were reparented away.
   */
  private track(replicaId: string, child: ChildProcess): void {
    this.children.set(replicaId, child);
    child.on('error', (err) => this.logger.warn({ replicaId, err }, 'replica process error'));
    child.once('exit', (code, signal) => {
      const info = signal ? `killed by ${signal}` : `exit code ${code}`;
      this.exits.set(replicaId, { pid: child.pid as number, info, at: Date.now() });
      if (this.children.get(replicaId) === child) this.children.delete(replicaId);
      for (const listener of [...this.stopListeners]) listener(replicaId);
    });
    child.unref();
  }

  /**
   * Resolves once a child of ours among `replicaIds` exits (or exited at or after `since`), or when
   * `signal` aborts. Replicas an earlier worker started are not our children: their end is only
   * seen by describe(), at the watch's next probe.
   */
  whenAnyStops(replicaIds: string[], since: number, signal: AbortSignal): Promise<void> {
    const ids = new Set(replicaIds);
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.stopListeners.delete(listener);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const listener = (replicaId: string): void => {
        if (ids.has(replicaId)) done();
      };
      // One that exited since the caller last looked (its exit event came before this call).
      if (signal.aborted || replicaIds.some((id) => (this.exits.get(id)?.at ?? -Infinity) >= since)) return resolve();
      this.stopListeners.add(listener);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private forget(record: LocalReplicaRecord): void {
    this.portsHandedOut.delete(record.port);
    if (this.children.get(record.replicaId)?.pid === record.pid) this.children.delete(record.replicaId);
    if (this.exits.get(record.replicaId)?.pid === record.pid) this.exits.delete(record.replicaId);
  }

  private async describeRecord(record: LocalReplicaRecord): Promise<ReplicaDescription> {
    const state = liveness(record.pid, record.startTime);
    const handle = toHandle(record);
    if (state === 'alive') return { ...handle, state: 'running' };
    return { ...handle, state: 'exited', exitInfo: await this.exitInfo(record, state === 'reused') };
  }

  /** How the process ended (when this process saw it) and the end of its log. */
  private async exitInfo(record: LocalReplicaRecord, pidReused: boolean): Promise<string> {
    const child = this.children.get(record.replicaId);
    if (child?.pid === record.pid && child.exitCode === null && child.signalCode === null) {
      // Dead but not reaped yet: the exit event is a moment away.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 500);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const seen = this.exits.get(record.replicaId);
    let info: string;
    if (seen?.pid === record.pid) info = seen.info;
    else if (pidReused) info = 'process gone (its pid now belongs to another process)';
    else info = 'process gone (exit status unknown: started by an earlier worker)';
    const tail = (await this.logTail(record.replicaId, EXIT_LOG_LINES)).slice(-EXIT_LOG_CHARS);
    return tail ? `${info}; last log lines:\n${tail}` : info;
  }

  /**
   * SIGTERM to the whole group, SIGKILL after the grace period, and wait until no member is
   * left. A pid now used by another process means our group is gone: the kernel does not reuse
   * a pid while a process group of that id exists, so there is nothing of ours to signal.
   */
  private async stopGroup(record: Pick<LocalReplicaRecord, 'replicaId' | 'pid' | 'pgid'> & { startTime?: number | null }): Promise<void> {
    const startTime = record.startTime ?? null;
    if (liveness(record.pid, startTime) === 'reused') return;
    const gone = (): boolean => liveness(record.pid, startTime) !== 'alive' && !hasLiveGroupMember(record.pgid);
    if (gone()) return;

    signalGroup(record.pgid, 'SIGTERM');
    // A stopped process (SIGSTOP, a debugger) would only see its SIGTERM when continued: continue
    // it, as systemd does, so that it can finish its requests and exit within the grace period.
    signalGroup(record.pgid, 'SIGCONT');
    if (await waitFor(gone, this.graceMs)) return;

    this.logger.warn({ replicaId: record.replicaId, pid: record.pid, graceMs: this.graceMs }, 'replica ignored SIGTERM: sending SIGKILL');
    signalGroup(record.pgid, 'SIGKILL');
    if (await waitFor(gone, KILL_WAIT_MS)) return;
    throw new ProviderError(`replica ${record.replicaId} (pgid ${record.pgid}) still runs after SIGKILL`, 'ProviderError', true);
  }
}

function validate(req: LaunchRequest): void {
  if (!REPLICA_ID_PATTERN.test(req.replicaId)) {
    throw new ProviderError(`invalid replica id "${req.replicaId}" (letters, digits, '.', '_', '-')`, 'InvalidRequest', false);
  }
  if (!Number.isInteger(req.gpus) || req.gpus < 0) {
    throw new ProviderError(`gpus must be a non-negative integer, got ${req.gpus}`, 'InvalidRequest', false);
  }
  if (!req.run.trim()) throw new ProviderError(`replica ${req.replicaId} has an empty run command`, 'InvalidRequest', false);
}

function toHandle(record: LocalReplicaRecord): ReplicaHandle {
  return {
    replicaId: record.replicaId,
    service: record.service,
    version: record.version,
    endpoint: record.endpoint,
    gpuIds: record.gpuIds,
    externalId: String(record.pid),
  };
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (condition()) return true;
    if (Date.now() >= until) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(POLL_MS, Math.max(1, until - Date.now()))));
  }
}
