/**
 * The embedded stack keeps itself whole: a second `rollout dev` on the same state dir refuses
 * and touches nothing, a port another program holds stops the start before anything is
 * cleaned up, and a stack killed with SIGKILL takes its Temporal, router and worker with it
 * (the next start cleans up its replicas).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { devArgs, killProcess, modelServerSpec, replicaProcesses, rolloutCli, ROOT, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';

let specDir: string;
const stacks: RunningStack[] = [];

beforeAll(() => {
  specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-devstack-'));
});

afterAll(async () => {
  for (const s of stacks) await s.stop();
}, 120_000);

/** Runs `rollout dev` to its exit (it is expected to refuse), with its output. */
function devUntilExit(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rollout dev did not exit:\n${output}`));
    }, 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const alive = (pid: number): boolean => {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

async function serve(stack: RunningStack, name: string): Promise<void> {
  const spec = writeSpec(specDir, `${name}.yaml`, modelServerSpec({ name, version: 'v1', replicas: 1 }));
  expect((await rolloutCli(stack, ['deploy', spec, '--wait'])).code).toBe(0);
}

async function answers(stack: RunningStack, name: string): Promise<number> {
  const res = await fetch(`${stack.routerUrl}/${name}/v1/models`);
  await res.arrayBuffer();
  return res.status;
}

test('a second rollout dev on the same state dir refuses (exit 2) and the running stack keeps serving', async () => {
  const first = await startStack();
  stacks.push(first);
  await serve(first, 'keep');
  const replicasBefore = replicaProcesses('keep');
  const routesBefore = fs.readFileSync(path.join(first.stateDir, 'routes.json'), 'utf8');
  const stackFileBefore = fs.readFileSync(path.join(first.stateDir, 'stack.json'), 'utf8');

  const { args } = await devArgs([], first.stateDir);
  const second = await devUntilExit(args);
  expect(second.code).toBe(2);
  expect(second.output).toMatch(new RegExp(`another rollout dev \\(pid ${first.dev.pid}\\) runs on ${first.stateDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  expect(second.output).not.toMatch(/^ready:/m);
  expect(second.output).not.toMatch(/terminated \d+ replica/);

  expect(replicaProcesses('keep')).toEqual(replicasBefore);
  expect(fs.readFileSync(path.join(first.stateDir, 'routes.json'), 'utf8')).toBe(routesBefore);
  expect(fs.readFileSync(path.join(first.stateDir, 'stack.json'), 'utf8')).toBe(stackFileBefore);
  expect(await answers(first, 'keep')).toBe(200);
}, 300_000);

test('a port another program holds: exit 2 naming the flag, nothing started or cleaned up', async () => {
  const blocker = net.createServer();
  const taken = await freePort();
  await new Promise<void>((resolve) => blocker.listen(taken, '127.0.0.1', resolve));
  try {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-e2e-'));
    // A record of a replica from "an earlier run": a refused start must leave it alone.
    fs.mkdirSync(path.join(stateDir, 'local', 'replicas'), { recursive: true });
    fs.writeFileSync(path.join(stateDir, 'routes.json'), '{"services": {}}');
    const { args } = await devArgs(['--router-port', String(taken)], stateDir);
    const r = await devUntilExit(args);
    expect(r.code).toBe(2);
    expect(r.output).toMatch(new RegExp(`--router-port ${taken}: in use by another program`));
    expect(r.output).not.toMatch(/^ready:/m);
    expect(fs.existsSync(path.join(stateDir, 'routes.json'))).toBe(true);
    expect(fs.existsSync(path.join(stateDir, 'stack.json'))).toBe(false);
    expect(fs.existsSync(path.join(stateDir, 'stack.lock'))).toBe(false); // released
  } finally {
    blocker.close();
  }
}, 120_000);

test('kill -9 of rollout dev: Temporal, router and worker stop with it; the next start removes its replicas', async () => {
  const doomed = await startStack();
  await serve(doomed, 'orphan');
  const orphans = replicaProcesses('orphan');
  expect(orphans.length).toBeGreaterThan(0);
  const { children } = JSON.parse(fs.readFileSync(path.join(doomed.stateDir, 'stack.json'), 'utf8')) as { children: { name: string; pid: number }[] };
  expect(children.map((c) => c.name).sort()).toEqual(['router', 'temporal', 'worker']);

  killProcess(doomed.dev.pid!, 'SIGKILL');
  await waitUntil(() => children.every((c) => !alive(c.pid)), `${children.map((c) => `${c.name} ${c.pid}`).join(', ')} to stop after the stack died`, 60_000);

  // Replicas outlive a dead stack by design (they outlive a crashed worker too); the next
  // start on the same state dir takes over its lock and removes them.
  const next = await startStack([], { stateDir: doomed.stateDir });
  stacks.push(next);
  expect(next.output()).toMatch(/terminated \d+ replica\(s\) left by a previous run/);
  await waitUntil(() => orphans.every((p) => !alive(p.pid)), 'the old replicas to be gone', 30_000);
  await serve(next, 'orphan');
  expect(await answers(next, 'orphan')).toBe(200);
}, 300_000);
