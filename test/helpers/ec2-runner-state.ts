/**
 * What an EC2 instance runner has put on this machine (namespaces, drop routes), on disk, so
 * that what a crashed run left behind is found and removed by the next one, and nothing else
 * is. Several runners may live at once (two test files, two engineers): each has a file of its
 * own, named by its pid, and a runner removes another's leftovers only once that owner is dead.
 * The default directory is under /run, a tmpfs like /run/netns: both vanish at reboot together.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { deleteInstanceNet, delDropRoute, nsPids, type DropRouteType, type InstanceNet } from './netns';

export const DEFAULT_STATE_DIR = '/run/gpu-rollout-ec2-runner';

export interface RunnerState {
  pid: number;
  /** The owner's start time (clock ticks since boot, /proc/<pid>/stat), so a reused pid is not taken for it. */
  startTime: string;
  routeType: DropRouteType;
  metric: number;
  dropCidrs: string[];
  instances: Record<string, InstanceNet>;
}

export function processStartTime(pid: number): string | undefined {
  try {
    // Field 22; the command name (field 2, in parentheses) may hold spaces, so count after its ')'.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function writeState(file: string, state: RunnerState): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2));
  fs.renameSync(tmp, file); // atomic: a crash leaves the old file or the new one, never half of one
}

const sigkill = (pid: number) => {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
};

/** Removes what dead runners left in `dir`: the processes inside their namespaces, the namespaces, their routes. */
export async function cleanStale(dir: string): Promise<string[]> {
  const cleaned: string[] = [];
  for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (!name.endsWith('.json')) continue;
    const file = path.join(dir, name);
    let state: RunnerState;
    try {
      state = JSON.parse(fs.readFileSync(file, 'utf8')) as RunnerState;
    } catch {
      continue; // not ours to judge
    }
    if (processStartTime(state.pid) === state.startTime) continue; // its owner still runs
    for (const n of Object.values(state.instances)) {
      // Only processes inside the namespace: a recorded process group id may belong to someone else by now.
      (await nsPids(n.ns)).forEach(sigkill);
      await deleteInstanceNet(n);
      cleaned.push(n.ns);
    }
    for (const cidr of state.dropCidrs) await delDropRoute(state.routeType, cidr, state.metric);
    fs.rmSync(file, { force: true });
  }
  return cleaned;
}

/**
 * The same teardown, synchronously, for process 'exit' (a test that never called close(), or
 * jest's forceExit): SIGKILL, then iproute2 in one batch that goes on past errors.
 */
export function teardownSync(state: RunnerState, file: string): void {
  const run = (args: string[], input?: string) => {
    try {
      return execFileSync('ip', args, { input, stdio: ['pipe', 'pipe', 'ignore'], timeout: 10_000 }).toString();
    } catch {
      return '';
    }
  };
  const nets = Object.values(state.instances);
  for (const n of nets) run(['netns', 'pids', n.ns]).split(/\s+/).filter(Boolean).map(Number).forEach(sigkill);
  const batch = [
    ...nets.flatMap((n) => [`route del ${n.ip}/32 dev ${n.hostVeth}`, `link del ${n.hostVeth}`, `netns del ${n.ns}`]),
    ...state.dropCidrs.map((cidr) => `route del ${state.routeType} ${cidr} metric ${state.metric}`),
  ];
  if (batch.length) run(['-force', '-batch', '-'], batch.join('\n'));
  fs.rmSync(file, { force: true });
}
