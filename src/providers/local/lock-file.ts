/**
 * A lock file that names its holder (pid and start time), for the replica locks (locks.ts) and
 * the dev stack's state-dir lock (src/dev/stack-lock.ts). It is created with its holder already
 * in it: written to a file of our own, then hard-linked into place (link(2) fails if the lock
 * exists, like open's O_EXCL). With open then write, a process killed between the two left an
 * empty lock that named no holder, which nobody could tell was dead.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { liveness, startTimeOf } from './proc';

export interface LockHolder {
  pid: number;
  startTime: number | null;
}

/** This process, as a lock names it. */
export function thisProcess(): LockHolder {
  return { pid: process.pid, startTime: startTimeOf(process.pid) };
}

/** Creates `lockPath` naming `holder` (plus `extra` fields); false when it exists already. */
export function createLock(lockPath: string, holder: LockHolder, extra: Record<string, unknown> = {}): boolean {
  const mine = `${lockPath}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  fs.writeFileSync(mine, JSON.stringify({ ...extra, ...holder }), { flag: 'wx' });
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

/** Who the lock names; undefined when it is gone or names nobody (not one of ours). */
export function lockHolder(lockPath: string): LockHolder | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as Partial<LockHolder>;
    if (typeof parsed.pid !== 'number' || !Number.isInteger(parsed.pid) || parsed.pid <= 0) return undefined;
    return { pid: parsed.pid, startTime: typeof parsed.startTime === 'number' ? parsed.startTime : null };
  } catch {
    return undefined;
  }
}

/** The holder still runs (the same process: pid reuse is told apart by the start time). */
export function holderAlive(holder: LockHolder): boolean {
  return liveness(holder.pid, holder.startTime) === 'alive';
}
