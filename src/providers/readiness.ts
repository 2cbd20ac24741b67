/**
 * Readiness of a replica: poll its HTTP probe until it answers 2xx, the process dies, or a
 * deadline passes. No Temporal here: the activity wraps it and heartbeats from `onProbe`.
 */
import { request } from 'undici';

export interface ProbeResult {
  ok: boolean;
  status?: number;
  error?: string;
}

export interface ProbeReport {
  attempt: number;
  status?: number;
  error?: string;
  elapsedMs: number;
}

export interface WaitUntilReadyOptions {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  endpoint: string;
  /** Probe path, e.g. `/health`. */
  path: string;
  /** Pause between probes. */
  periodMs: number;
  /**
   * When the second probe comes after the first (then one every `periodMs`, on a fixed schedule
   * that does not drift by the probes' own time). Default `periodMs`. See probePhaseMs.
   */
  phaseMs?: number;
  /**
   * More probes, at these times after the wait began (ms), besides the schedule: when the
   * replica is expected ready (a load time learned from its version's earlier replicas), so it
   * is seen ready then rather than at the next scheduled probe.
   */
  extraProbesAtMs?: number[];
  /** Timeout of one probe. */
  timeoutMs: number;
  /** Epoch ms: not ready by then = give up. */
  deadline: number;
  /** Checked between probes, so a crashed replica fails fast instead of at the deadline. */
  isAlive: () => Promise<{ alive: boolean; detail?: string }>;
  onProbe?: (report: ProbeReport) => void;
  signal?: AbortSignal;
}

export interface ReadyResult {
  ready: true;
  attempts: number;
  elapsedMs: number;
  /** When the probe that saw it ready began, after the wait began (ms): its load time is at most this. */
  readyAtMs: number;
  /** When the last probe that did not see it ready began (ms): its load time is more than this. */
  notReadyAtMs?: number;
}

/** The replica did not answer its probe with 2xx before the deadline. */
export class ReplicaNotReadyError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
    readonly lastProbe: ProbeResult | undefined,
  ) {
    super(message);
    this.name = 'ReplicaNotReadyError';
  }
}

/** The replica's process exited while we waited for it. */
export class ReplicaDiedError extends Error {
  constructor(
    message: string,
    readonly detail: string | undefined,
  ) {
    super(message);
    this.name = 'ReplicaDiedError';
  }
}

/** One GET; any 2xx is ready. Never throws (except when `signal` aborts): failures are data. */
export async function probeOnce(url: string, timeoutMs: number, signal?: AbortSignal): Promise<ProbeResult> {
  const timeout = AbortSignal.timeout(Math.max(1, timeoutMs));
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    const res = await request(url, { method: 'GET', signal: combined, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    // Drain the body so the keep-alive connection can be reused by the next probe.
    await res.body.dump().catch(() => undefined);
    return { ok: res.statusCode >= 200 && res.statusCode < 300, status: res.statusCode };
  } catch (err) {
    if (signal?.aborted) throw abortError(signal);
    if (timeout.aborted) return { ok: false, error: `timed out after ${timeoutMs} ms` };
    return { ok: false, error: describeError(err) };
  }
}

/**
 * Probes `endpoint + path` every `periodMs` until it answers 2xx. Throws ReplicaDiedError as soon
 * as `isAlive` says the process is gone, ReplicaNotReadyError once `deadline` has passed, and the
 * signal's reason (an AbortError, or Temporal's CancelledFailure) when `signal` aborts.
 * At least one probe is made even if the deadline has already passed (an activity retried late).
 */
export async function waitUntilReady(opts: WaitUntilReadyOptions): Promise<ReadyResult> {
  const started = Date.now();
  const phaseMs = Math.min(opts.periodMs, Math.max(0, opts.phaseMs ?? opts.periodMs));
  const url = joinUrl(opts.endpoint, opts.path);
  const extras = (opts.extraProbesAtMs ?? [])
    .filter((ms) => Number.isFinite(ms) && ms > 0)
    .sort((a, b) => a - b)
    .map((ms) => started + ms);
  let attempt = 0;
  let scheduled = 0;
  let notReadyAtMs: number | undefined;
  let last: ProbeResult | undefined;
  for (;;) {
    if (opts.signal?.aborted) throw abortError(opts.signal);
    attempt += 1;
    const probeAt = Date.now() - started;
    // A probe never outlasts the deadline by more than its own timeout.
    last = await probeOnce(url, opts.timeoutMs, opts.signal);
    opts.onProbe?.({ attempt, status: last.status, error: last.error, elapsedMs: Date.now() - started });
    if (last.ok) return { ready: true, attempts: attempt, elapsedMs: Date.now() - started, readyAtMs: probeAt, ...(notReadyAtMs !== undefined ? { notReadyAtMs } : {}) };
    notReadyAtMs = probeAt;

    const liveness = await opts.isAlive();
    if (!liveness.alive) {
      throw new ReplicaDiedError(
        `replica at ${opts.endpoint} exited before it was ready${liveness.detail ? `: ${liveness.detail}` : ''}`,
        liveness.detail,
      );
    }
    const remaining = opts.deadline - Date.now();
    if (remaining <= 0) {
      const waited = Math.round((Date.now() - started) / 1000);
      throw new ReplicaNotReadyError(
        `replica at ${opts.endpoint} not ready after ${waited}s (${attempt} probes of ${opts.path}): last probe: ${formatProbe(last)}`,
        attempt,
        last,
      );
    }
    // Scheduled probe k (k ≥ 1) is due at started + phase + (k - 1) × period; one that ran late is
    // followed at once. An extra probe goes in between when it is due first (one already past is dropped).
    const now = Date.now();
    while (extras.length > 0 && (extras[0] ?? 0) <= now) extras.shift();
    const regularDue = started + phaseMs + scheduled * opts.periodMs;
    const extraDue = extras[0];
    let due = regularDue;
    if (extraDue !== undefined && extraDue < regularDue) {
      due = extraDue;
      extras.shift();
    } else scheduled += 1;
    await sleep(Math.max(0, Math.min(due - now, remaining)), opts.signal);
  }
}

const GOLDEN = (Math.sqrt(5) - 1) / 2;

/**
 * The delay of a replica's second probe, in (0, period]: spread over the period by the replica's
 * sequence number (`…-r<seq>`) with the golden ratio, so that consecutive replicas' probes fall
 * evenly over the period. A replica then waits on average half a period between becoming ready
 * and the probe that sees it, whatever its load time; probing at whole periods from its start
 * instead would, for a load time just over a whole number of periods, wait a whole period every
 * time. It also keeps a fleet's probes from arriving together (as kubelet jitters its first probe).
 */
export function probePhaseMs(replicaId: string, periodMs: number): number {
  const seq = Number(/(\d+)$/.exec(replicaId)?.[1] ?? 0);
  const frac = (seq * GOLDEN) % 1;
  return periodMs * (1 - frac);
}

function formatProbe(probe: ProbeResult): string {
  if (probe.status !== undefined) return `HTTP ${probe.status}`;
  return probe.error ?? 'no answer';
}

function joinUrl(endpoint: string, path: string): string {
  return endpoint.replace(/\/+$/, '') + (path.startsWith('/') ? path : `/${path}`);
}

/** Connection errors are wrapped by undici; the code (ECONNREFUSED…) is what a reader needs. */
function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    const code = (err as NodeJS.ErrnoException).code ?? (cause as NodeJS.ErrnoException | undefined)?.code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** The signal's own reason when it is an Error, so Temporal sees its CancelledFailure. */
function abortError(signal: AbortSignal): Error {
  if (signal.reason instanceof Error) return signal.reason;
  return new DOMException('the wait for readiness was aborted', 'AbortError');
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
