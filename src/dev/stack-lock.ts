/**
 * One embedded stack per state dir. Two stacks on one state dir would clean up each other's
 * replicas and route table, so the second one refuses and touches nothing. The lock is a file
 * created exclusively (O_EXCL) holding the owner's pid and start time: a lock whose owner is
 * gone (killed with SIGKILL, the machine rebooted) is taken over; pid reuse is told apart by
 * the start time. Only this module reads or writes it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { liveness, startTimeOf } from '../providers/local/proc';

export class StateDirInUseError extends Error {
  constructor(
    readonly stateDir: string,
    readonly ownerPid: number,
  ) {
    super(`another rollout dev (pid ${ownerPid}) runs on ${stateDir}: stop it first, or give this one its own --state-dir`);
  }
}

interface LockOwner {
  pid: number;
  startTime: number | null;
}

/** Takes the state dir's lock for this process; returns the function that releases it. */
export function lockStateDir(stateDir: string): () => void {
  const lockPath = path.join(stateDir, 'stack.lock');
  const me: LockOwner = { pid: process.pid, startTime: startTimeOf(process.pid) };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      fs.writeFileSync(lockPath, JSON.stringify(me), { flag: 'wx' });
      return () => releaseIfMine(lockPath, me);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readOwner(lockPath);
    if (owner && liveness(owner.pid, owner.startTime) === 'alive') throw new StateDirInUseError(stateDir, owner.pid);
    // The owner is gone: its lock is stale. Another starter may remove it at the same moment;
    // the exclusive create above decides which of us gets it.
    fs.rmSync(lockPath, { force: true });
  }
  const owner = readOwner(lockPath);
  throw new StateDirInUseError(stateDir, owner?.pid ?? -1);
}

function readOwner(lockPath: string): LockOwner | undefined {
  try {
    const parsed = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as Partial<LockOwner>;
    return typeof parsed.pid === 'number' ? { pid: parsed.pid, startTime: parsed.startTime ?? null } : undefined;
  } catch {
    return undefined; // half-written or unreadable: treated as stale
  }
}

function releaseIfMine(lockPath: string, me: LockOwner): void {
  const owner = readOwner(lockPath);
  if (owner?.pid === me.pid && owner.startTime === me.startTime) fs.rmSync(lockPath, { force: true });
}
