/**
 * Mutual exclusion for launches and terminations: a promise chain per key inside this
 * process, and lock files (`open(…, 'wx')`) between processes sharing a state dir
 * (an old worker still shutting down while its replacement starts).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { ProviderError } from '../types';
import { liveness, startTimeOf } from './proc';

/** Runs the functions given for one key one after another, in call order. */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    // Forget the key once idle, so the map does not grow with every replica id ever seen.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

export interface FileLockOptions {
  /** A lock whose file was not touched for this long is taken to belong to a dead holder. */
  staleMs?: number;
  /** Give up waiting after this long. */
  waitMs?: number;
}

const POLL_MS = 50;

/**
 * Holds `lockPath` while `fn` runs. The file names its holder (pid and start time): a lock whose
 * holder is dead (a worker killed mid-launch) is taken over at once, so the next attempt does not
 * wait out staleMs. Where that cannot be told, the holder touches the file every staleMs/3, so a
 * long hold (a terminate waiting out its grace period) is not mistaken for a crashed holder.
 * Known gap: two waiters that both judge a lock stale may race to replace it; stale locks
 * only come from a crash in the middle of a launch, so this is accepted.
 */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, opts: FileLockOptions = {}): Promise<T> {
  const staleMs = opts.staleMs ?? 30_000;
  const waitUntil = Date.now() + (opts.waitMs ?? staleMs * 4);
  for (;;) {
    if (takeLock(lockPath)) break;
    if (holderIsDead(lockPath) || isStale(lockPath, staleMs)) {
      fs.rmSync(lockPath, { force: true });
      continue;
    }
    if (Date.now() > waitUntil) {
      throw new ProviderError(`lock ${lockPath} is held by another process`, 'ProviderError', true);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  const refresh = setInterval(() => {
    const now = new Date();
    try {
      fs.utimesSync(lockPath, now, now);
    } catch {
      // Removed under us (judged stale elsewhere): nothing useful to do mid-operation.
    }
  }, Math.max(10, Math.floor(staleMs / 3)));
  refresh.unref();
  try {
    return await fn();
  } finally {
    clearInterval(refresh);
    fs.rmSync(lockPath, { force: true });
  }
}

/**
 * Creates the lock file with its holder already in it: written to a file of our own, then
 * hard-linked into place (link(2) fails if the lock exists, like open's O_EXCL). With open then
 * write, a worker killed between the two left an empty lock that named no holder, and the next
 * attempt waited out staleMs (30 s) for it.
 */
function takeLock(lockPath: string): boolean {
  const holder: LockHolder = { pid: process.pid, startTime: startTimeOf(process.pid), at: new Date().toISOString() };
  const mine = `${lockPath}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync(mine, JSON.stringify(holder), { flag: 'wx' });
  try {
    fs.linkSync(mine, lockPath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    fs.rmSync(mine, { force: true });
  }
}

interface LockHolder {
  pid: number;
  startTime: number | null;
  at: string;
}

/** The holder recorded in the file has exited (or its pid now belongs to another process). */
function holderIsDead(lockPath: string): boolean {
  let holder: Partial<LockHolder>;
  try {
    holder = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as Partial<LockHolder>;
  } catch {
    return false; // Gone, or being written right now: staleness decides.
  }
  if (typeof holder.pid !== 'number' || !Number.isInteger(holder.pid) || holder.pid <= 0) return false;
  if (holder.pid === process.pid) return false; // Our own: the in-process mutex orders those.
  return liveness(holder.pid, typeof holder.startTime === 'number' ? holder.startTime : null) !== 'alive';
}

function isStale(lockPath: string, staleMs: number): boolean {
  try {
    return Date.now() - fs.statSync(lockPath).mtimeMs > staleMs;
  } catch {
    return false; // Gone already: the next open will tell.
  }
}
