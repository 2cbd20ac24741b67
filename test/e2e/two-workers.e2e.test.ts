/**
 * Two workers on one task queue (issue 13, "Horizontal"), end to end: the real `rollout dev`
 * stack (its worker), a second real `rollout worker` on the same machine and state dir, real
 * fake-replica processes. Rollouts of several services run at once; the second worker is
 * SIGKILLed while it runs one of their activities. Asserted: every rollout succeeds (on the
 * survivor), and afterwards every replica is accounted for — each service has exactly its
 * replicas, all of the new version, each a live process group with a record, and no replica
 * process runs outside the groups the records name.
 */
import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RolloutResult } from '../../src/workflows/types';
import { CLI, cliEnv, replicaProcesses, ROOT, rolloutCli, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';
import { waitUntil } from '../helpers/wait';

jest.setTimeout(360_000);

const FAKE_REPLICA = 'native/fake-replica/target/release/fake-replica';
const SERVICES = ['two-workers-a', 'two-workers-b', 'two-workers-c', 'two-workers-d'];
const REPLICAS = 2;

/** STARTED in PendingActivityState. */
const ACTIVITY_STARTED = 2;

let stack: RunningStack;
let connection: Connection;
let client: Client;
let second: { child: ChildProcess; exited: Promise<unknown>; identity: string } | undefined;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-two-workers-'));

function spec(name: string, version: number, loadSeconds: number): string {
  return writeSpec(
    dir,
    `${name}-v${version}.yaml`,
    [
      `name: ${name}`,
      `replicas: ${REPLICAS}`,
      `run: ${FAKE_REPLICA}`,
      'env:',
      `  MODEL_VERSION: "v${version}"`,
      `  LOAD_DELAY_SECONDS: "${loadSeconds}"`,
      'readiness_probe:',
      '  path: /health',
      '  initial_delay_seconds: 120',
      '  period_seconds: 1',
      'rollout:',
      '  strategy: rolling',
      '  max_surge: 1',
      '  max_unavailable: 0',
      '  timeout: 5m',
      '',
    ].join('\n'),
  );
}

interface LocalRecord {
  replicaId: string;
  service: string;
  version: number;
  pid: number;
  pgid: number;
}

/** The process group of `pid` (field 5 of /proc/<pid>/stat); undefined once it is gone. */
function pgrpOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}

/** The process groups running replicas of our services (a replica: `/bin/sh -c <run>` and its child). */
function replicaGroups(): Set<number> {
  const groups = SERVICES.flatMap((s) => replicaProcesses(s)).map((p) => pgrpOf(p.pid));
  return new Set(groups.filter((g): g is number => g !== undefined));
}

function records(): LocalRecord[] {
  const recordDir = path.join(stack.stateDir, 'local', 'replicas');
  return fs
    .readdirSync(recordDir)
    .filter((f) => f.endsWith('.json'))
    .flatMap((f) => {
      try {
        return [JSON.parse(fs.readFileSync(path.join(recordDir, f), 'utf8')) as LocalRecord];
      } catch {
        return []; // removed between the listing and the read
      }
    });
}

/** A second `rollout worker`, with the environment the stack gives its own (src/dev/stack.ts). */
async function startSecondWorker(): Promise<NonNullable<typeof second>> {
  const stackFile = JSON.parse(fs.readFileSync(path.join(stack.stateDir, 'stack.json'), 'utf8')) as { routerAdminUrl: string; routerUrl: string };
  const child = spawn(process.execPath, [CLI, '--disable-config-file', '--disable-config-env', '--address', stack.temporalAddress, '--namespace', 'default', 'worker'], {
    cwd: ROOT,
    env: cliEnv({
      ROLLOUT_STATE_DIR: stack.stateDir,
      ROLLOUT_GPUS: '',
      ROUTER_ADMIN_URL: stackFile.routerAdminUrl,
      ROUTER_TOKEN_FILE: path.join(stack.stateDir, 'router.token'),
      ROUTER_PUBLIC_URL: stackFile.routerUrl,
      ROLLOUT_METRICS_PORT: '',
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await waitUntil(() => /worker ready/.test(out) || child.exitCode !== null, 'the second worker to be ready', 180_000, 100);
  if (child.exitCode !== null) throw new Error(`the second worker exited ${child.exitCode}:\n${out}`);
  return { child, exited, identity: `${child.pid}@${os.hostname()}` };
}

beforeAll(async () => {
  stack = await startStack();
  connection = await Connection.connect({ address: stack.temporalAddress });
  client = new Client({ connection });
  second = await startSecondWorker();
});

afterAll(async () => {
  if (second && second.child.exitCode === null && second.child.signalCode === null) {
    second.child.kill('SIGTERM');
    await second.exited;
  }
  await connection?.close();
  await stack?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function deploy(version: number, loadSeconds: number): Promise<string[]> {
  return Promise.all(
    SERVICES.map(async (name) => {
      const r = await rolloutCli(stack, ['deploy', spec(name, version, loadSeconds), '-o', 'json']);
      expect(r).toMatchObject({ code: 0 });
      return (JSON.parse(r.stdout) as { rolloutWorkflowId: string }).rolloutWorkflowId;
    }),
  );
}

/** A rollout of `ids` with an activity running on `identity` now. */
async function activityRunningOn(ids: string[], identity: string): Promise<boolean> {
  for (const id of ids) {
    const d = await client.workflow.getHandle(id).describe();
    if ((d.raw.pendingActivities ?? []).some((a) => a.lastWorkerIdentity === identity && a.state === ACTIVITY_STARTED)) return true;
  }
  return false;
}

test('the second worker is SIGKILLed mid-rollout: the other finishes every rollout, every replica accounted for', async () => {
  const first = await deploy(1, 0.2);
  for (const id of first) expect(((await client.workflow.getHandle(id).result()) as RolloutResult).outcome).toBe('succeeded');

  const rollouts = await deploy(2, 2);
  const victim = second as NonNullable<typeof second>;
  await waitUntil(() => activityRunningOn(rollouts, victim.identity), 'an activity of the rollouts running on the second worker', 120_000, 100);
  process.kill(victim.child.pid as number, 'SIGKILL');
  await victim.exited;

  for (const id of rollouts) expect(((await client.workflow.getHandle(id).result()) as RolloutResult).outcome).toBe('succeeded');

  // The old replicas are retired (some by the dead worker's launches, all by the survivor): wait
  // until each service has exactly its new replicas and nothing else runs.
  let seen = '';
  const accountedFor = () => {
    const ours = records().filter((r) => SERVICES.includes(r.service));
    const running = replicaGroups();
    seen = JSON.stringify({ records: ours.map((r) => [r.replicaId, r.version, r.pgid]), groups: [...running] });
    return (
      ours.length === SERVICES.length * REPLICAS &&
      ours.every((r) => r.version === 2) &&
      SERVICES.every((s) => ours.filter((r) => r.service === s).length === REPLICAS) &&
      running.size === ours.length &&
      ours.every((r) => running.has(r.pgid))
    );
  };
  await waitUntil(accountedFor, 'exactly the new replicas, each recorded and running', 120_000, 250).catch((err: Error) => {
    throw new Error(`${err.message}; last seen: ${seen}`);
  });
  expect(replicaGroups()).toEqual(new Set(records().filter((r) => SERVICES.includes(r.service)).map((r) => r.pgid)));
  expect(replicaGroups().size).toBe(SERVICES.length * REPLICAS);
});
