import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withFileLock } from '../../src/providers/local/locks';
import { startTimeOf } from '../../src/providers/local/proc';

describe('withFileLock', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'locks-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('takes over at once a fresh lock whose holder has exited (a worker killed mid-launch)', async () => {
    const child = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    const deadPid = Number(child.stdout.trim());
    const lockPath = path.join(dir, 'r1.lock');
    fs.writeFileSync(lockPath, JSON.stringify({ pid: deadPid, startTime: 1, at: new Date().toISOString() }));
    let ran = false;
    // staleMs of an hour and waitMs of 5 s: only the dead holder can explain getting the lock.
    await withFileLock(lockPath, async () => {
      ran = true;
    }, { staleMs: 3_600_000, waitMs: 5_000 });
    expect(ran).toBe(true);
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  it('waits for a live holder in another process', async () => {
    const lockPath = path.join(dir, 'r2.lock');
    // PID 1 is alive and is not us: its lock must be respected until waitMs runs out.
    fs.writeFileSync(lockPath, JSON.stringify({ pid: 1, startTime: startTimeOf(1), at: new Date().toISOString() }));
    await expect(withFileLock(lockPath, async () => undefined, { staleMs: 3_600_000, waitMs: 300 })).rejects.toThrow(/held by another process/);
    expect(fs.existsSync(lockPath)).toBe(true);
  });

  it('treats a holder whose pid now belongs to another process as dead', async () => {
    const lockPath = path.join(dir, 'r3.lock');
    const reusedStart = (startTimeOf(1) ?? 0) + 12345;
    fs.writeFileSync(lockPath, JSON.stringify({ pid: 1, startTime: reusedStart, at: new Date().toISOString() }));
    await withFileLock(lockPath, async () => undefined, { staleMs: 3_600_000, waitMs: 5_000 });
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  it('falls back to the age of the file when the holder cannot be read', async () => {
    const lockPath = path.join(dir, 'r4.lock');
    fs.writeFileSync(lockPath, 'not json');
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lockPath, old, old);
    await withFileLock(lockPath, async () => undefined, { staleMs: 30_000, waitMs: 5_000 });
    expect(fs.existsSync(lockPath)).toBe(false);
  });
});
