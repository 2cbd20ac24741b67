/**
 * One embedded stack per state dir. Two stacks on one state dir would clean up each other's
 * replicas and route table, so the second one refuses and touches nothing. The lock is a file
 * naming its owner (src/providers/local/lock-file.ts): a lock whose owner is gone (killed with
 * SIGKILL, the machine rebooted) is taken over; pid reuse is told apart by the start time.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createLock, holderAlive, lockHolder, thisProcess, type LockHolder } from '../providers/local/lock-file';

export class StateDirInUseError extends Error {
  constructor(
    readonly stateDir: string,
    readonly ownerPid: number,
  ) {
    super(`another rollout dev (pid ${ownerPid}) runs on ${stateDir}: stop it first, or give this one its own --state-dir`);
  }
}

/** Takes the state dir's lock for this process; returns the function that releases it. */
export function lockStateDir(stateDir: string): () => void {
  const lockPath = path.join(stateDir, 'stack.lock');
  const me = thisProcess();
  for (let attempt = 0; attempt < 3; attempt++) {
    if (createLock(lockPath, me)) return () => releaseIfMine(lockPath, me);
    const owner = lockHolder(lockPath);
    if (owner && holderAlive(owner)) throw new StateDirInUseError(stateDir, owner.pid);
    // The owner is gone: its lock is stale. Another starter may remove it at the same moment;
    // the exclusive create above decides which of us gets it.
    fs.rmSync(lockPath, { force: true });
  }
  const owner = lockHolder(lockPath);
  throw new StateDirInUseError(stateDir, owner?.pid ?? -1);
}

function releaseIfMine(lockPath: string, me: LockHolder): void {
  const owner = lockHolder(lockPath);
  if (owner?.pid === me.pid && owner.startTime === me.startTime) fs.rmSync(lockPath, { force: true });
}
