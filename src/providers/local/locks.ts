/**
 * Mutual exclusion for launches and terminations: a promise chain per key inside this
 * process, and lock files (`open(…, 'wx')`) between processes sharing a state dir
 * (an old worker still shutting down while its replacement starts).
 */
import fs from 'node:fs';
import { ProviderError } from '../types';
import { createLock, holderAlive, lockHolder, thisProcess } from './lock-file';

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
    if (createLock(lockPath, thisProcess(), { at: new Date().toISOString() })) break;
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

/** The holder named in the file has exited (or its pid now belongs to another process). */
function holderIsDead(lockPath: string): boolean {
  const holder = lockHolder(lockPath);
  // None named (gone, or not ours): staleness decides. Our own: the in-process mutex orders those.
  if (!holder || holder.pid === process.pid) return false;
  return !holderAlive(holder);
}

function isStale(lockPath: string, staleMs: number): boolean {
  try {
    return Date.now() - fs.statSync(lockPath).mtimeMs > staleMs;
  } catch {
    return false; // Gone already: the next open will tell.
  }
}
