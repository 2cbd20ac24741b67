/**
 * The on-call commands on the real stack (`rollout dev`, real replicas, the real CLI): an empty
 * `list`; two services, `oc` and `oc-v2` (whose rollout ids, `rollout-oc-v2-v1`, start like
 * `oc`'s); `oc` rolled out twice — a canary rolled back by a person with a reason, then a rolling
 * rollout promoted with `deploy --wait` (its non-terminal progress: one plain line per change) —
 * while `status --watch` without a terminal prints one line per change (and `-o json --watch`
 * one JSON object per change) until Ctrl-C; then `list` and `history` in text and JSON; a service
 * whose status query gets no answer listed with its error; a watch that ends with its service.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { CLI, cliEnv, modelServerSpec, ROOT, runCli, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';
import { waitUntil } from '../helpers/wait';

let stack: RunningStack;
let specDir: string;
let connection: Connection;
let client: Client;
/** Not probed when set (README), so no UI needs to run for the links. */
const UI = 'http://127.0.0.1:1';

beforeAll(async () => {
  specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-oncall-'));
  stack = await startStack();
  connection = await Connection.connect({ address: stack.temporalAddress });
  client = new Client({ connection });
}, 240_000);

afterAll(async () => {
  await connection?.close();
  await stack?.stop();
}, 60_000);

const cli = (args: string[]) => runCli(args, cliEnv({ TEMPORAL_ADDRESS: stack.temporalAddress, TEMPORAL_UI_URL: UI }), 240_000);

/** A CLI process left running (a watch), its output collected. */
function background(args: string[]): { child: ChildProcess; out: () => string; err: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: cliEnv({ TEMPORAL_ADDRESS: stack.temporalAddress }), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exited };
}

const lines = (text: string) => text.split('\n').filter((l) => l.length > 0);

test('an empty fleet: a clear line (and [] in JSON), exit 0', async () => {
  const text = await cli(['list']);
  expect(text.code).toBe(0);
  expect(text.stdout).toBe('no services in namespace default (deploy one with `rollout deploy <spec.yaml>`)\n');
  const json = await cli(['list', '-o', 'json']);
  expect(json.code).toBe(0);
  expect(JSON.parse(json.stdout)).toEqual([]);
  const none = await cli(['history', 'oc', '-o', 'json']);
  expect(none.code).toBe(0);
  expect(JSON.parse(none.stdout)).toEqual([]);
}, 120_000);

test('two services, a rollback by a person and a promotion: watch, deploy --wait, list and history tell it', async () => {
  const spec = (name: string, version: string, over: Partial<Parameters<typeof modelServerSpec>[0]> = {}) =>
    writeSpec(specDir, `${name}-${version}-${Math.random().toString(36).slice(2)}.yaml`, modelServerSpec({ name, version, ...over }));
  expect((await cli(['deploy', spec('oc', 'v1'), '--wait'])).code).toBe(0);
  expect((await cli(['deploy', spec('oc-v2', 'v1', { replicas: 1 }), '--wait'])).code).toBe(0);

  const watch = background(['status', 'oc', '--watch']);
  const ndjson = background(['status', 'oc', '--watch', '-o', 'json']);
  await waitUntil(() => lines(watch.out()).length >= 1 && lines(ndjson.out()).length >= 1, 'the watches to print the first state');

  // v2: a canary whose replica loads far longer than the test, so it is still rolling out when a person rolls it back.
  const canary = spec('oc', 'v2', { strategy: 'canary', extraEnv: { LOAD_DELAY_SECONDS: '600' }, initialDelay: 900, rolloutYaml: ['steps:', '  - weight: 50', '  - pause: {}'] });
  expect((await cli(['deploy', canary])).code).toBe(0);
  await waitUntil(() => /rollout v1 → v2 rolling_out/.test(watch.out()), 'the watch to show the rollout to v2');
  const rollback = await cli(['rollback', 'oc', '--reason', 'p99 too high at 3am']);
  expect(rollback.code).toBe(0);
  await waitUntil(() => /last v2 rolled_back/.test(watch.out()), 'the watch to show v2 rolled back', 120_000);

  // v3: rolling, followed with --wait without a terminal: one plain line per change, no escape sequences.
  const wait = await cli(['deploy', spec('oc', 'v3'), '--wait']);
  expect(wait.code).toBe(0);
  expect(wait.stderr).not.toMatch(/\x1b\[/);
  const progress = lines(wait.stderr).filter((l) => /^\[\d\d:\d\d\] /.test(l));
  expect(progress.length).toBeGreaterThanOrEqual(1);
  for (const line of progress) expect(line).toMatch(/^\[\d\d:\d\d\] (rolling_out|succeeded) · traffic .* · v\d/);
  for (let i = 1; i < progress.length; i++) expect(progress[i].slice(8)).not.toBe(progress[i - 1].slice(8));
  expect(wait.stderr).toMatch(/✔ oc v3 serves all traffic/);
  await waitUntil(() => /last v3 succeeded/.test(watch.out()), 'the watch to show v3 promoted', 120_000);
  const lastObject = () => JSON.parse(lines(ndjson.out()).pop() ?? '{}');
  await waitUntil(() => lastObject().lastRollout?.version === 3, 'the JSON watch to show v3 promoted', 120_000);

  // Ctrl-C ends both watches with exit 0.
  watch.child.kill('SIGINT');
  ndjson.child.kill('SIGINT');
  expect(await watch.exited).toBe(0);
  expect(await ndjson.exited).toBe(0);
  const watched = lines(watch.out());
  for (const line of watched) expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ oc v\d · traffic /);
  // A line per change only: never the same state twice in a row.
  const states = watched.map((l) => l.replace(/^\S+ /, ''));
  for (let i = 1; i < states.length; i++) expect(states[i]).not.toBe(states[i - 1]);
  expect(states[0]).toBe('oc v1 · traffic v1 100% · last v1 succeeded · v1 READY×2');
  expect(states[states.length - 1]).toBe('oc v3 · traffic v3 100% · last v3 succeeded · v3 READY×2');
  expect(states.some((l) => l.startsWith('oc v1 · traffic v1 100% · last v2 rolled_back · '))).toBe(true);
  const objects = lines(ndjson.out()).map((l) => JSON.parse(l));
  expect(objects.length).toBeGreaterThanOrEqual(3);
  for (let i = 1; i < objects.length; i++) expect(objects[i]).not.toEqual(objects[i - 1]);
  expect(objects[0]).toMatchObject({ name: 'oc', version: 1 });
  expect(objects.some((o) => o.rollout?.toVersion === 2)).toBe(true);
  expect(objects[objects.length - 1]).toMatchObject({ name: 'oc', version: 3, lastRollout: { version: 3, outcome: 'succeeded' } });

  // list: both services, text and JSON.
  const list = await cli(['list']);
  expect(list.code).toBe(0);
  const table = lines(list.stdout);
  expect(table[0]).toMatch(/^NAME\s+VERSION\s+STATUS\s+READY\s+ROLLOUT\s+ENDPOINT$/);
  expect(table[1]).toMatch(new RegExp(`^oc\\s+v3\\s+serving\\s+2/2\\s+-\\s+${stack.routerUrl}/oc$`));
  expect(table[2]).toMatch(new RegExp(`^oc-v2\\s+v1\\s+serving\\s+1/1\\s+-\\s+${stack.routerUrl}/oc-v2$`));
  const listJson = JSON.parse((await cli(['list', '-o', 'json'])).stdout);
  expect(listJson).toEqual([
    { name: 'oc', version: 3, status: 'serving', replicas: { ready: 2, total: 2, desired: 2 }, endpoint: `${stack.routerUrl}/oc` },
    { name: 'oc-v2', version: 1, status: 'serving', replicas: { ready: 1, total: 1, desired: 1 }, endpoint: `${stack.routerUrl}/oc-v2` },
  ]);

  // history: newest first, why each ended, none of oc-v2's.
  const history = await cli(['history', 'oc', '-o', 'json']);
  expect(history.code).toBe(0);
  const entries = JSON.parse(history.stdout);
  expect(entries.map((e: { workflowId: string }) => e.workflowId)).toEqual(['rollout-oc-v3', 'rollout-oc-v2', 'rollout-oc-v1']);
  expect(entries[0]).toMatchObject({ version: 3, fromVersion: 1, strategy: 'rolling', outcome: 'succeeded', cause: { kind: 'promoted' }, why: 'promoted', runs: 1, ui: `${UI}/namespaces/default/workflows/rollout-oc-v3` });
  expect(entries[1]).toMatchObject({
    version: 2,
    fromVersion: 1,
    strategy: 'canary',
    outcome: 'rolled_back',
    cause: { kind: 'person', personReason: 'p99 too high at 3am' },
    why: 'rolled back by a person: p99 too high at 3am',
    reason: 'manual rollback: p99 too high at 3am',
  });
  expect(entries[2]).toMatchObject({ version: 1, fromVersion: 0, outcome: 'succeeded', why: 'promoted' });
  for (const e of entries) {
    expect(Date.parse(e.endedAt) - Date.parse(e.startedAt)).toBeGreaterThanOrEqual(0);
    expect(e.durationSeconds).toBe(Math.round((Date.parse(e.endedAt) - Date.parse(e.startedAt)) / 1000));
  }
  const text = lines((await cli(['history', 'oc'])).stdout);
  expect(text[0]).toMatch(/^VERSION\s+STRATEGY\s+OUTCOME\s+STARTED\s+DURATION\s+UI\s+WHY$/);
  expect(text[1]).toMatch(/^v1→3\s+rolling\s+succeeded\s+\S+Z\s+\d+s\s+http:\/\/127\.0\.0\.1:1\/namespaces\/default\/workflows\/rollout-oc-v3\s+promoted$/);
  expect(text[2]).toMatch(/^v1→2\s+canary\s+rolled_back\s+.*rolled back by a person: p99 too high at 3am$/);
  expect(text[3]).toMatch(/^v1\s+rolling\s+succeeded\s+.*promoted$/);
  expect(text).toHaveLength(4);
  const limited = JSON.parse((await cli(['history', 'oc', '--limit', '1', '-o', 'json'])).stdout);
  expect(limited.map((e: { version: number }) => e.version)).toEqual([3]);
  const other = JSON.parse((await cli(['history', 'oc-v2', '-o', 'json'])).stdout);
  expect(other.map((e: { workflowId: string }) => e.workflowId)).toEqual(['rollout-oc-v2-v1']);
  expect((await cli(['history', 'oc', '--limit', '0'])).code).toBe(2);
}, 600_000);

test('a service whose status query gets no answer is listed with its error; the others still are', async () => {
  // A service workflow on a task queue no worker polls: its query is never answered.
  const ghost = await client.workflow.start('serviceWorkflow', { workflowId: 'service-oc-ghost', taskQueue: 'oncall-no-worker', args: [{ name: 'oc-ghost' }] });
  try {
    const list = await cli(['list', '-o', 'json']);
    expect(list.code).toBe(0);
    const entries = JSON.parse(list.stdout);
    expect(entries.map((e: { name: string }) => e.name)).toEqual(['oc', 'oc-ghost', 'oc-v2']);
    expect(entries[1]).toMatchObject({ name: 'oc-ghost', status: 'error', error: expect.any(String) });
    expect(entries[1].error.length).toBeGreaterThan(0);
    expect(entries[0]).toMatchObject({ status: 'serving' });
    const text = await cli(['list']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^oc-ghost\s+-\s+error\s+-/m);
    expect(text.stdout).toMatch(/^oc-ghost: \S/m);
  } finally {
    await ghost.terminate('test done');
  }
}, 180_000);

test('deploy --wait in a terminal (a pty from `script`): the live display, redrawn in place; the exit code kept', async () => {
  // v2 loads for 3 s, so the display's first frame (rolling out) comes before the last (succeeded).
  const v2 = writeSpec(specDir, 'oc-v2-tty.yaml', modelServerSpec({ name: 'oc-v2', version: 'v2', replicas: 1, extraEnv: { LOAD_DELAY_SECONDS: '3' } }));
  const command = [process.execPath, CLI, 'deploy', v2, '--wait'].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const tty = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: ROOT, env: cliEnv({ TEMPORAL_ADDRESS: stack.temporalAddress }), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
  expect(tty.code).toBe(0);
  expect(tty.out).toMatch(/oc-v2 {2}v1 → v2 {2}rolling_out {2}\d\d:\d\d/);
  expect(tty.out).toMatch(/traffic {3}\[[█▒ ]{30}\] {2}█ v1 100%/);
  expect(tty.out).toMatch(/replicas {2}v1 {2}READY 1/);
  // Redrawn: back up over the previous frame, each line cleared to its end; never the whole screen.
  expect(tty.out).toMatch(/\r\x1b\[\d+A/);
  expect(tty.out).toMatch(/\x1b\[K/);
  expect(tty.out).not.toMatch(/\x1b\[2J/);
  expect(tty.out).toMatch(/oc-v2 {2}v1 → v2 {2}succeeded/);
  expect(tty.out).toMatch(/✔ oc-v2 v2 serves all traffic/);
  // The plain lines of a pipe are not printed in a terminal.
  expect(tty.out).not.toMatch(/\[\d\d:\d\d\] rolling_out · /);
}, 240_000);

test('a watch ends (exit 0) when its service workflow ends', async () => {
  const watch = background(['status', 'oc-v2', '--watch']);
  await waitUntil(() => lines(watch.out()).length >= 1, 'the watch to print the first state');
  await client.workflow.getHandle('service-oc-v2').terminate('the on-call test ends this service');
  expect(await watch.exited).toBe(0);
  expect(watch.err()).toMatch(/service oc-v2 is not running \(its workflow is TERMINATED\); stopped watching/);
}, 120_000);
