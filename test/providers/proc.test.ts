import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readTail } from '../../src/providers/local/log-files';
import { KeyedMutex } from '../../src/providers/local/locks';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { hasLiveGroupMember, liveGroupMembers, liveness, parseProcStat, startTimeOf } from '../../src/providers/local/proc';

const linux = fs.existsSync('/proc/self/stat');

describe('parseProcStat', () => {
  const tail = '0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 200';
  it('reads state, pgrp and start time', () => {
    expect(parseProcStat(`4242 (node) S 1 4242 4242 ${tail}`)).toEqual({ state: 'S', pgrp: 4242, startTime: 123456 });
  });
  it('counts fields from the last parenthesis, so a command name with ") (" cannot shift them', () => {
    expect(parseProcStat(`77 (a) (b c) Z 1 70 70 ${tail}`)).toEqual({ state: 'Z', pgrp: 70, startTime: 123456 });
  });
  it('rejects text that is not a stat line', () => {
    expect(parseProcStat('garbage')).toBeUndefined();
  });
});

(linux ? describe : describe.skip)('liveness', () => {
  it('tells this process alive, a wrong start time reused, an unused pid dead', () => {
    const start = startTimeOf(process.pid);
    expect(start).not.toBeNull();
    expect(liveness(process.pid, start)).toBe('alive');
    expect(liveness(process.pid, (start as number) + 1)).toBe('reused');
    expect(liveness(2 ** 22 + 1, null)).toBe('dead');
  });
});

(linux ? describe : describe.skip)('hasLiveGroupMember', () => {
  /** Polls until `check` holds (the kernel and Node's reaping take a moment), up to 20 s. */
  async function eventually(check: () => boolean): Promise<void> {
    const until = Date.now() + 20_000;
    while (!check()) {
      if (Date.now() > until) throw new Error('condition not met within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('sees a live leader, a member left behind by a dead leader (the /proc scan), and no group at all', async () => {
    // A group leader (sh) with a background member that outlives it.
    const leader = spawn('/bin/sh', ['-c', 'sleep 60 & echo $!; exec sleep 60'], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
    const pgid = leader.pid as number;
    const [line] = (await once(leader.stdout!, 'data')) as [Buffer];
    const member = Number(line.toString().trim());
    try {
      expect(hasLiveGroupMember(pgid)).toBe(true);
      const exited = once(leader, 'exit');
      process.kill(pgid, 'SIGKILL'); // the leader only
      await exited;
      expect(liveness(pgid, null)).toBe('dead');
      expect(hasLiveGroupMember(pgid)).toBe(true);
      expect(liveGroupMembers(pgid)).toEqual([member]);
    } finally {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await eventually(() => !hasLiveGroupMember(pgid));
    expect(liveGroupMembers(pgid)).toEqual([]);
  });
});

describe('readTail', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tail-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('returns the last lines, and "" for a missing file', async () => {
    const file = path.join(dir, 'a.log');
    fs.writeFileSync(file, Array.from({ length: 50 }, (_, i) => `line ${i}`).join('\n') + '\n');
    expect(await readTail(file, 3)).toBe('line 47\nline 48\nline 49');
    expect(await readTail(path.join(dir, 'none.log'), 3)).toBe('');
  });

  it('drops the cut first line of a long file', async () => {
    const file = path.join(dir, 'big.log');
    fs.writeFileSync(file, 'x'.repeat(100_000) + '\nlast\n');
    expect(await readTail(file, 5)).toBe('last');
  });
});

describe('KeyedMutex', () => {
  it('runs calls for one key in order and lets other keys run alongside, even after a failure', async () => {
    const mutex = new KeyedMutex();
    const events: string[] = [];
    const step = (name: string, ms: number, fail = false) => async () => {
      events.push(`${name}:start`);
      await new Promise((resolve) => setTimeout(resolve, ms));
      events.push(`${name}:end`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([mutex.run('a', step('a1', 30, true)), mutex.run('a', step('a2', 1)), mutex.run('b', step('b1', 1))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(events.indexOf('a1:end')).toBeLessThan(events.indexOf('a2:start'));
    expect(events.indexOf('b1:end')).toBeLessThan(events.indexOf('a1:end'));
  });
});
