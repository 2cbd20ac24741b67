/**
 * A fault-injecting Provider for reliability tests: it wraps a real provider (the local one) and,
 * from a seeded PRNG (the seed is printed, and FAULT_SEED replays it), makes some calls fail or
 * crawl, and can kill or freeze a chosen replica's process group once it answers its probe.
 *
 *  - Transient errors: `ProviderError` of type ThrottlingError or ProviderError, retryable (the
 *    activities turn them into retryable ApplicationFailures: asFailure in src/activities/index.ts
 *    for launch and terminate; a describe error inside a readiness wait or a watch fails that
 *    attempt, which is retried too). On `errorRate` of launch/terminate/describe calls, half of
 *    them (`afterShare`) BEFORE the inner call (nothing happened) and half AFTER it succeeded (the
 *    work is done, the caller sees an error): the retry must find what the first call did, not
 *    redo it (a launch must return the running replica, not start a second process).
 *  - Slow calls: on `slowRate` of those calls, an extra delay in `delayMs` before the inner call.
 *    Launch and terminate heartbeat every 2 s around the provider call (heartbeat.ts) and the
 *    watches heartbeat on a timer, all well inside the 10 s heartbeat timeout, so a delay of a
 *    few seconds only slows them down.
 *  - `killAfterReady`: SIGKILL of the replica's process group some time after it answered 2xx on
 *    its probe (a replica that dies while serving).
 *  - `hangAfterReady`: SIGSTOP of the group (it keeps its port, the kernel still accepts
 *    connections, nothing answers: probes time out). `releaseHung()` lets go of (SIGCONT, then
 *    SIGKILL) any group still stopped, for the test's cleanup.
 *
 * Each operation draws from its own PRNG stream and every call takes the same number of draws, so
 * with a given seed the n-th launch (terminate, describe) always meets the same fault, whatever
 * the interleaving of operations. With `forceEachKind`, the first call of each operation fails
 * after the inner call and the second before it, so every kind of fault is certainly injected
 * however the dice fall. Every injected fault is counted (`counts`) and logged (`events`).
 *
 * `list()` and `gpus()` pass straight through: the test reads the truth through them.
 */
import { request } from 'undici';
import { liveness, signalGroup, startTimeOf } from '../../src/providers/local/proc';
import {
  ProviderError,
  type GpuInventory,
  type LaunchRequest,
  type Provider,
  type ReplicaDescription,
  type ReplicaHandle,
} from '../../src/providers/types';

export type FaultOp = 'launch' | 'terminate' | 'describe';
export const FAULT_OPS: readonly FaultOp[] = ['launch', 'terminate', 'describe'];

export interface FaultyProviderOptions {
  /** PRNG seed; default FAULT_SEED from the environment, else a random one. Printed either way. */
  seed?: number;
  /** Fraction of calls that fail with a transient error, overall or per operation (default 0.3). */
  errorRate?: number | Partial<Record<FaultOp, number>>;
  /** Of the injected errors, the fraction raised after the inner call succeeded (default 0.5). */
  afterShare?: number;
  /** Fraction of calls delayed (default 0.2). */
  slowRate?: number;
  /** Extra delay of a slow call, uniform in [min, max] ms (default 1000–3000). */
  delayMs?: [number, number];
  /** First call of each operation: error after; second: error before (default true). */
  forceEachKind?: boolean;
  /** Where the seed and the kills/hangs are announced (default console.log). */
  log?: (line: string) => void;
}

export interface OpCounts {
  calls: number;
  errorsBefore: number;
  errorsAfter: number;
  slow: number;
  delayMsTotal: number;
}

export interface FaultEvent {
  at: number;
  op: FaultOp | 'kill' | 'hang';
  replicaId: string;
  kind: 'error-before' | 'error-after' | 'slow' | 'SIGKILL' | 'SIGSTOP';
  detail?: string;
}

export interface ProcessFault {
  replicaId: string;
  pid: number;
  /** When its probe first answered 2xx (epoch ms). */
  readyAt: number;
  /** When the signal was sent (epoch ms). */
  at: number;
}

/** mulberry32: small, fast, good enough for picking faults; deterministic from a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hashString(s: string): number {
  let h = 2166136261;
  for (const ch of s) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return h;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class FaultyProvider implements Provider {
  readonly name: string;
  readonly seed: number;
  readonly counts: Record<FaultOp, OpCounts>;
  readonly events: FaultEvent[] = [];
  readonly kills: ProcessFault[] = [];
  readonly hangs: ProcessFault[] = [];
  /** Per replica id: every pid an inner launch returned (more than one while the first lives = started twice). */
  readonly launchedPids = new Map<string, number[]>();
  /** Launch calls that came after an error-after launch of the same id and got the same process back. */
  launchRetriesFoundExisting = 0;
  /** A PRNG stream of its own for the test's choices (which replica to kill), from the same seed. */
  readonly rng: () => number;
  private errorRates: Record<FaultOp, number>;
  private slowRate: number;
  private readonly afterShare: number;
  private readonly delayMs: [number, number];
  private readonly forceEachKind: boolean;
  private readonly streams: Record<FaultOp, () => number>;
  private readonly log: (line: string) => void;
  private readonly erroredAfterLaunch = new Map<string, number>();
  private readonly stopped: { pid: number; startTime: number | null; replicaId: string }[] = [];

  constructor(
    private readonly inner: Provider,
    opts: FaultyProviderOptions = {},
  ) {
    this.name = inner.name;
    const fromEnv = process.env.FAULT_SEED !== undefined && process.env.FAULT_SEED !== '' ? Number(process.env.FAULT_SEED) : undefined;
    this.seed = (opts.seed ?? fromEnv ?? Math.floor(Math.random() * 2 ** 31)) >>> 0;
    this.log = opts.log ?? ((line) => console.log(line));
    this.log(`[faulty-provider] seed ${this.seed} (replay with FAULT_SEED=${this.seed})`);
    this.errorRates = FaultyProvider.rates(opts.errorRate ?? 0.3);
    this.afterShare = opts.afterShare ?? 0.5;
    this.slowRate = opts.slowRate ?? 0.2;
    this.delayMs = opts.delayMs ?? [1000, 3000];
    this.forceEachKind = opts.forceEachKind ?? true;
    this.streams = {
      launch: mulberry32(this.seed ^ hashString('launch')),
      terminate: mulberry32(this.seed ^ hashString('terminate')),
      describe: mulberry32(this.seed ^ hashString('describe')),
    };
    this.rng = mulberry32(this.seed ^ hashString('test'));
    const zero = (): OpCounts => ({ calls: 0, errorsBefore: 0, errorsAfter: 0, slow: 0, delayMsTotal: 0 });
    this.counts = { launch: zero(), terminate: zero(), describe: zero() };
  }

  private static rates(rate: number | Partial<Record<FaultOp, number>>): Record<FaultOp, number> {
    if (typeof rate === 'number') return { launch: rate, terminate: rate, describe: rate };
    return { launch: rate.launch ?? 0, terminate: rate.terminate ?? 0, describe: rate.describe ?? 0 };
  }

  /** Changes the rates from now on (e.g. none while the test itself cleans up). */
  configure(opts: Pick<FaultyProviderOptions, 'errorRate' | 'slowRate'>): void {
    if (opts.errorRate !== undefined) this.errorRates = FaultyProvider.rates(opts.errorRate);
    if (opts.slowRate !== undefined) this.slowRate = opts.slowRate;
  }

  /** Injected transient errors of one operation (before + after). */
  errorsOf(op: FaultOp): number {
    return this.counts[op].errorsBefore + this.counts[op].errorsAfter;
  }

  /** Every fault injected so far, by kind, for reports. */
  summary() {
    return {
      seed: this.seed,
      ops: Object.fromEntries(FAULT_OPS.map((op) => [op, { ...this.counts[op] }])) as Record<FaultOp, OpCounts>,
      transientErrors: FAULT_OPS.reduce((n, op) => n + this.errorsOf(op), 0),
      slowCalls: FAULT_OPS.reduce((n, op) => n + this.counts[op].slow, 0),
      kills: this.kills.length,
      hangs: this.hangs.length,
      launchRetriesFoundExisting: this.launchRetriesFoundExisting,
    };
  }

  /** The fault for the next call of `op`: the same number of draws every call, so the stream stays aligned. */
  private decide(op: FaultOp): { error?: 'before' | 'after'; type: 'ThrottlingError' | 'ProviderError'; delay: number } {
    const r = this.streams[op];
    const [pError, pAfter, pType, pSlow, pDelay] = [r(), r(), r(), r(), r()];
    const n = ++this.counts[op].calls;
    let error: 'before' | 'after' | undefined;
    if (this.forceEachKind && n === 1) error = 'after';
    else if (this.forceEachKind && n === 2) error = 'before';
    else if (pError < this.errorRates[op]) error = pAfter < this.afterShare ? 'after' : 'before';
    const type = pType < 0.5 ? 'ThrottlingError' : 'ProviderError';
    const delay = pSlow < this.slowRate ? Math.round(this.delayMs[0] + pDelay * (this.delayMs[1] - this.delayMs[0])) : 0;
    return { error, type, delay };
  }

  /** Runs `call` with the decided fault around it. */
  private async faulty<T>(op: FaultOp, replicaId: string, call: () => Promise<T>, onResult?: (value: T, errorAfter: boolean) => void): Promise<T> {
    const fault = this.decide(op);
    if (fault.delay > 0) {
      this.counts[op].slow += 1;
      this.counts[op].delayMsTotal += fault.delay;
      this.events.push({ at: Date.now(), op, replicaId, kind: 'slow', detail: `${fault.delay} ms` });
      await sleep(fault.delay);
    }
    const injected = (when: 'before' | 'after') =>
      new ProviderError(`injected ${fault.type} ${when} ${op} of ${replicaId} (faulty-provider, seed ${this.seed})`, fault.type, true);
    if (fault.error === 'before') {
      this.counts[op].errorsBefore += 1;
      this.events.push({ at: Date.now(), op, replicaId, kind: 'error-before', detail: fault.type });
      throw injected('before');
    }
    const value = await call();
    onResult?.(value, fault.error === 'after');
    if (fault.error === 'after') {
      this.counts[op].errorsAfter += 1;
      this.events.push({ at: Date.now(), op, replicaId, kind: 'error-after', detail: fault.type });
      throw injected('after');
    }
    return value;
  }

  async launch(req: LaunchRequest): Promise<ReplicaHandle> {
    return this.faulty('launch', req.replicaId, () => this.inner.launch(req), (handle, errorAfter) => {
      const pid = Number(handle.externalId);
      const pids = this.launchedPids.get(req.replicaId) ?? [];
      if (!pids.includes(pid)) pids.push(pid);
      this.launchedPids.set(req.replicaId, pids);
      // A launch after an error-after launch of the same id: did it find that process?
      if (this.erroredAfterLaunch.get(req.replicaId) === pid) this.launchRetriesFoundExisting += 1;
      if (errorAfter) this.erroredAfterLaunch.set(req.replicaId, pid);
      else this.erroredAfterLaunch.delete(req.replicaId);
    });
  }

  async describe(replicaId: string): Promise<ReplicaDescription> {
    return this.faulty('describe', replicaId, () => this.inner.describe(replicaId));
  }

  async terminate(replicaId: string): Promise<void> {
    return this.faulty('terminate', replicaId, () => this.inner.terminate(replicaId));
  }

  list(service?: string): Promise<ReplicaDescription[]> {
    return this.inner.list(service);
  }

  gpus(): Promise<GpuInventory> {
    return this.inner.gpus();
  }

  /**
   * Waits until `replicaId` runs and answers 2xx on `probePath`, then `afterReadyMs` more, then
   * SIGKILLs its process group. Resolves with what was done.
   */
  killAfterReady(replicaId: string, afterReadyMs: number, probePath = '/health'): Promise<ProcessFault> {
    return this.signalAfterReady(replicaId, afterReadyMs, probePath, 'SIGKILL');
  }

  /** As killAfterReady, with SIGSTOP: the replica hangs (its probes time out). See releaseHung. */
  hangAfterReady(replicaId: string, afterReadyMs: number, probePath = '/health'): Promise<ProcessFault> {
    return this.signalAfterReady(replicaId, afterReadyMs, probePath, 'SIGSTOP');
  }

  /** SIGCONT then SIGKILL to every group this wrapper stopped and that still exists (never a reused pid). */
  releaseHung(): number {
    let released = 0;
    for (const s of this.stopped.splice(0)) {
      if (liveness(s.pid, s.startTime) === 'reused') continue;
      const cont = signalGroup(s.pid, 'SIGCONT');
      const kill = signalGroup(s.pid, 'SIGKILL');
      if (cont || kill) released += 1;
    }
    return released;
  }

  private async signalAfterReady(replicaId: string, afterReadyMs: number, probePath: string, signal: 'SIGKILL' | 'SIGSTOP'): Promise<ProcessFault> {
    const deadline = Date.now() + 120_000;
    let described = await this.inner.describe(replicaId);
    while (!(described.state === 'running' && (await answers(described.endpoint + probePath)))) {
      if (Date.now() > deadline) throw new Error(`faulty-provider: ${replicaId} never answered ${probePath} (${described.state})`);
      await sleep(100);
      described = await this.inner.describe(replicaId);
    }
    const readyAt = Date.now();
    // "Some time after it became READY": the fault's own timing, not a wait for an event.
    await sleep(afterReadyMs);
    const pid = Number(described.externalId);
    const startTime = startTimeOf(pid);
    if (liveness(pid, startTime) !== 'alive' || (await this.inner.describe(replicaId)).externalId !== described.externalId) {
      throw new Error(`faulty-provider: ${replicaId} (pid ${pid}) is no longer the process it was`);
    }
    // The replica is its own process group (pgid = pid): the shell and the server under it.
    signalGroup(pid, signal);
    const fault: ProcessFault = { replicaId, pid, readyAt, at: Date.now() };
    if (signal === 'SIGKILL') this.kills.push(fault);
    else {
      this.hangs.push(fault);
      this.stopped.push({ pid, startTime, replicaId });
    }
    this.events.push({ at: fault.at, op: signal === 'SIGKILL' ? 'kill' : 'hang', replicaId, kind: signal, detail: `pgid ${pid}` });
    this.log(`[faulty-provider] ${signal} to ${replicaId} (pgid ${pid}), ${fault.at - readyAt} ms after it answered ${probePath}`);
    return fault;
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await request(url, { headersTimeout: 2000, bodyTimeout: 2000 });
    await res.body.dump();
    return res.statusCode >= 200 && res.statusCode < 300;
  } catch {
    return false;
  }
}
