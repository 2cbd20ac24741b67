/**
 * Facts about processes, read from /proc (Linux). Where /proc is missing (macOS), start times
 * and group scans degrade to `kill(pid, 0)`, which cannot tell pid reuse or zombies apart.
 */
import fs from 'node:fs';

export interface ProcStat {
  /** One letter: R running, S sleeping, Z zombie, … */
  state: string;
  pgrp: number;
  /** Field 22, clock ticks since boot: with the pid, identifies one process across pid reuse. */
  startTime: number;
}

const hasProc = fs.existsSync('/proc/self/stat');

/** Parses /proc/<pid>/stat; undefined when the process does not exist (or /proc is absent). */
export function readProcStat(pid: number): ProcStat | undefined {
  if (!hasProc) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return parseProcStat(text);
}

/**
 * `comm` (field 2) is in parentheses and may itself hold spaces and ')', so fields are counted
 * from the LAST ')': after it come field 3 (state), 4 (ppid), 5 (pgrp) … 22 (starttime).
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).split(' ');
  const field = (n: number): string | undefined => fields[n - 3];
  const state = field(3);
  const pgrp = Number(field(5));
  const startTime = Number(field(22));
  if (!state || !Number.isFinite(pgrp) || !Number.isFinite(startTime)) return undefined;
  return { state, pgrp, startTime };
}

/** Start time of a live process, or null where /proc cannot tell. */
export function startTimeOf(pid: number): number | null {
  return readProcStat(pid)?.startTime ?? null;
}

export type Liveness = 'alive' | 'dead' | 'reused';

/**
 * Whether the process we recorded (pid + start time) still runs. A zombie is dead: it has exited
 * and only waits to be reaped. A pid whose start time differs is another process ('reused').
 */
export function liveness(pid: number, startTime: number | null): Liveness {
  if (!signalZero(pid)) return 'dead';
  const stat = readProcStat(pid);
  if (!stat) return hasProc ? 'dead' : 'alive';
  if (startTime !== null && stat.startTime !== startTime) return 'reused';
  return stat.state === 'Z' || stat.state === 'X' ? 'dead' : 'alive';
}

/**
 * Live (non-zombie) members of process group `pgid`. Scans /proc because `kill(-pgid, 0)` also
 * succeeds for zombies, and orphaned zombies may never be reaped where PID 1 is not an init.
 */
export function liveGroupMembers(pgid: number): number[] {
  if (!hasProc) return signalZero(-pgid) ? [pgid] : [];
  const members: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProcStat(Number(entry));
    if (stat && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') members.push(Number(entry));
  }
  return members;
}

/**
 * Whether group `pgid` has a live (non-zombie) member. Cheap in the usual cases, so that a
 * terminate polling for its group's end does not scan /proc (every process on the machine) at
 * each turn: no process in the group at all (`kill(-pgid, 0)` fails with ESRCH) is a no, a live
 * leader a yes; only a dead leader with members left takes liveGroupMembers' scan.
 */
export function hasLiveGroupMember(pgid: number): boolean {
  if (!groupMayExist(pgid)) return false;
  if (!hasProc) return true;
  const leader = readProcStat(pgid);
  if (leader && leader.pgrp === pgid && leader.state !== 'Z' && leader.state !== 'X') return true;
  return liveGroupMembers(pgid).length > 0;
}

/** False only when the kernel says no process has group id `pgid` (ESRCH); EPERM still means some do. */
function groupMayExist(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Live process-group leaders whose environment holds every `name=value` of `env` (read from
 * /proc/<pid>/environ: as root, or for processes of the same user). For finding a replica whose
 * launch was cut short between its spawn and its record: its REPLICA_ID and PORT say which it is.
 */
export function groupLeadersWithEnv(env: Record<string, string>): number[] {
  if (!hasProc) return [];
  const wanted = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const stat = readProcStat(pid);
    if (!stat || stat.pgrp !== pid || stat.state === 'Z' || stat.state === 'X') continue;
    let vars: string[];
    try {
      vars = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    } catch {
      continue; // Another user's, or gone meanwhile.
    }
    if (wanted.every((w) => vars.includes(w))) found.push(pid);
  }
  return found;
}

/** Sends `signal` to every process of the group; false when the group no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** EPERM means a process of another user holds the pid: not ours, so not alive for us. */
function signalZero(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
