/**
 * Worker crashes at seeded moments (issue 10). A real Temporal dev server, the real router, real
 * model-server replicas, and the real worker (`dist/worker.js`, run by chaos-worker.js, which says
 * when each activity starts). Each point deploys the next version of one rollout kind — rolling,
 * blue-green, canary with analysis, constrained surge (GPUs), a rollback in progress, an in-place
 * scale — and SIGKILLs the worker inside the n-th attempt of one activity type, then starts a new
 * worker at once (as `rollout dev` does). Each point must end as it would have without the crash:
 * the expected outcome, every replica READY, no replica process leaked or started twice (live
 * processes and the provider's records against the service's status), and not one request
 * failed through the router meanwhile.
 *
 * `npm test` runs CHAOS_POINTS=5 with a fixed seed; `npm run chaos` runs 50 with a new seed, after
 * a crash-free run of each kind, and reports each point's time against that baseline. The seed is
 * printed: CHAOS_SEED=<seed> replays the same points. RELIABILITY_REPORT=1 writes the figures to
 * bench/results/worker-crash.json (never otherwise: a clean clone stays clean).
 */
import { WithStartWorkflowOperation, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { serviceSettled } from '../../src/cli/commands/deploy';
import { LocalProvider } from '../../src/providers/local';
import { startRouter, type RunningRouter } from '../../src/router/server';
import { validateSpec } from '../../src/spec/load';
import type { ServiceSpec } from '../../src/spec/types';
import { controlUpdate, deployUpdate, rolloutStatusQuery, serviceStatusQuery } from '../../src/workflows/messages';
import { serviceWorkflowId, type RolloutOutcome, type RolloutResult, type ServiceStatus } from '../../src/workflows/types';
import { replicaProcesses } from '../helpers/dev-stack';
import { mulberry32 } from '../helpers/faulty-provider';
import { startLoad } from '../helpers/load';
import { freePort } from '../helpers/ports';
import { createLocalEnv } from '../helpers/temporal-env';
import { waitUntil } from '../helpers/wait';

const ROOT = path.resolve(__dirname, '..', '..');
const MODEL_SERVER = path.join(ROOT, 'examples', 'model-server', 'server.js');
const CHAOS_WORKER = path.join(__dirname, 'chaos-worker.js');
const POINTS = Number(process.env.CHAOS_POINTS ?? 5);
const SOAK = POINTS > 5;
const SEED = Number(process.env.CHAOS_SEED ?? (SOAK ? crypto.randomInt(2 ** 31) : 20261201));
/** Activities that take milliseconds: held a moment after they start, so a kill lands inside. */
const QUICK = ['setTraffic', 'gpuCapacity', 'readTrafficStats', 'controlRollout', 'retireReplicas'];

type Kind = 'rolling' | 'blue_green' | 'canary' | 'surge' | 'rollback' | 'in_place';
const KINDS: Kind[] = ['rolling', 'blue_green', 'canary', 'surge', 'rollback', 'in_place'];
/**
 * The activity types each kind runs (a rollback's are counted once the rollback was asked for):
 * batched steps (startReplica carries a step's retirements and its traffic change; retireReplicas
 * removes what no start carries, with the traffic change; setTraffic is called only for a change
 * nothing carries: a canary's weight, an in-place update's relabel).
 */
const ACTIVITIES: Record<Kind, string[]> = {
  rolling: ['startReplica', 'watchFleet', 'retireReplicas'],
  blue_green: ['startReplica', 'retireReplicas'],
  canary: ['startReplica', 'setTraffic', 'readTrafficStats'],
  surge: ['gpuCapacity', 'startReplica', 'retireReplicas'],
  // A rollback of a version that never became ready changes no traffic: no setTraffic to kill in.
  rollback: ['controlRollout', 'retireReplicas'],
  in_place: ['startReplica', 'setTraffic', 'retireReplicas'],
};
const ALL_ACTIVITIES = [...new Set(Object.values(ACTIVITIES).flat())];
/** Kinds whose rollouts may run an activity only once (an in-place step, a rollback), and activities asked once per rollout. */
const ONE_OCCURRENCE_KINDS: Kind[] = ['in_place', 'rollback'];
const ONCE_PER_ROLLOUT = ['gpuCapacity'];

interface Point {
  kind: Kind;
  activity: string;
  /** Kill in the n-th attempt of that activity type within the point (1 = the first). */
  occurrence: number;
}

interface PointResult extends Point {
  landed: boolean;
  outcome: RolloutOutcome;
  seconds: number;
  extraSeconds?: number;
  requests: number;
  failedRequests: number;
  leaked: number;
  startedTwice: number;
}

/**
 * The points: first every activity type once and every kind once (so even 5 points are spread
 * out, and 50 cover everything), the rest drawn at random; the order shuffled by the seed.
 */
function choosePoints(count: number, seed: number): Point[] {
  const random = mulberry32(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
  const covering: Point[] = [];
  for (const activity of ALL_ACTIVITIES) covering.push({ kind: pick(KINDS.filter((k) => ACTIVITIES[k].includes(activity))), activity, occurrence: 1 });
  for (const kind of KINDS) if (!covering.some((p) => p.kind === kind)) covering.push({ kind, activity: pick(ACTIVITIES[kind]), occurrence: 1 });
  for (let i = covering.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [covering[i], covering[j]] = [covering[j], covering[i]];
  }
  const points = covering.slice(0, count);
  while (points.length < count) {
    const kind = pick(KINDS);
    const activity = pick(ACTIVITIES[kind]);
    // A second occurrence only where every such rollout has two, so that every point lands.
    const once = ONE_OCCURRENCE_KINDS.includes(kind) || ONCE_PER_ROLLOUT.includes(activity);
    points.push({ kind, activity, occurrence: once ? 1 : 1 + Math.floor(random() * 2) });
  }
  return points;
}

let env: TestWorkflowEnvironment;
let router: RunningRouter;
let stateDir: string;
let bundlePath: string;
let workerEnv: Record<string, string>;
let worker: ChildProcess | undefined;
let workerOutput = '';
/** Called with each "chaos: activity <type> <workflowId>" line of the current worker. */
let onActivity: (type: string, workflowId: string) => void = () => undefined;
const taskQueue = `chaos-${process.pid}`;
const versions = new Map<Kind, number>();
const baselines = new Map<Kind, number>();
const results: PointResult[] = [];

// Names of this run's own (another run on the machine, say a second CI job, finds replica
// processes by service name too).
const RUN = crypto.randomBytes(3).toString('hex');
const serviceOf = (kind: Kind) => `chaos-${kind.replace('_', '-')}-${RUN}`;

/** The spec of `kind`'s service at `version`: every version differs from the last, so each deploy is a rollout. */
function specOf(kind: Kind, version: number, opts: { neverReady?: boolean } = {}): ServiceSpec {
  const loadSeconds = opts.neverReady ? '600' : '0.5';
  const rollout: Record<string, unknown> = { strategy: 'rolling', max_surge: 1, max_unavailable: 0, timeout: '10m' };
  const raw: Record<string, unknown> = {
    name: serviceOf(kind),
    replicas: 2,
    run: `${JSON.stringify(process.execPath)} ${JSON.stringify(MODEL_SERVER)}`,
    env: { MODEL_VERSION: `v${version}`, LOAD_DELAY_SECONDS: loadSeconds },
    readiness_probe: { path: '/health', initial_delay_seconds: opts.neverReady ? 900 : 120, period_seconds: 1, timeout_seconds: 2, failure_threshold: 3 },
    rollout,
  };
  if (kind === 'blue_green') rollout.strategy = 'blue_green';
  if (kind === 'canary') {
    Object.assign(rollout, { strategy: 'canary', steps: [{ weight: 50 }, { pause: { duration: '3s' } }, { weight: 100 }] });
    rollout.analysis = { interval: '2s', max_error_rate: 0.05, min_requests: 1, failure_limit: 2 };
  }
  if (kind === 'surge') {
    Object.assign(rollout, { max_surge_percent: 50 });
    raw.resources = { accelerators: 'L4:1' };
  }
  // In place: only the replica count changes (2 ↔ 3), so the running replicas stay.
  if (kind === 'in_place') raw.env = { MODEL_VERSION: 'v1', LOAD_DELAY_SECONDS: loadSeconds };
  if (kind === 'in_place') raw.replicas = version % 2 === 0 ? 3 : 2;
  const checked = validateSpec(raw);
  if (!checked.ok) throw new Error(`bad chaos spec: ${JSON.stringify(checked.issues)}`);
  return checked.spec;
}

const serviceHandle = (kind: Kind) => env.client.workflow.getHandle(serviceWorkflowId(serviceOf(kind)));
const statusOf = (kind: Kind): Promise<ServiceStatus> => serviceHandle(kind).query(serviceStatusQuery);

async function deploy(kind: Kind, spec: ServiceSpec): Promise<{ rolloutId: string; handle: WorkflowHandle }> {
  const answer = await env.client.workflow.executeUpdateWithStart(deployUpdate, {
    args: [{ spec }],
    startWorkflowOperation: new WithStartWorkflowOperation('serviceWorkflow', {
      workflowId: serviceWorkflowId(serviceOf(kind)),
      taskQueue,
      args: [{ name: serviceOf(kind) }],
      workflowIdConflictPolicy: 'USE_EXISTING',
    }),
  });
  if (!answer.rolloutWorkflowId) throw new Error(`no rollout started for ${kind}: ${answer.reason}`);
  versions.set(kind, answer.version);
  return { rolloutId: answer.rolloutWorkflowId, handle: env.client.workflow.getHandle(answer.rolloutWorkflowId) };
}

function startWorker(): Promise<void> {
  const child = spawn(process.execPath, [CHAOS_WORKER], { cwd: ROOT, env: { ...process.env, ...workerEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  worker = child;
  let pending = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    workerOutput += chunk.toString();
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^chaos: activity (\S+) (\S+) attempt/.exec(line);
      if (m) onActivity(m[1], m[2]);
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (workerOutput += chunk.toString()));
  return new Promise((resolve, reject) => {
    const ready = () => {
      if (/worker ready/.test(workerOutput.slice(-2000))) {
        child.stdout!.off('data', ready);
        resolve();
      }
    };
    child.stdout!.on('data', ready);
    child.once('exit', (code, signal) => {
      if (worker === child) worker = undefined;
      reject(new Error(`chaos worker exited (${code ?? signal}) before it was ready:\n${workerOutput.slice(-3000)}`));
    });
  });
}

/** SIGKILL: the worker gets no chance to finish anything (as a crash, an OOM kill, a lost host). */
async function killWorker(): Promise<void> {
  const child = worker;
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await gone;
  worker = undefined;
}

/**
 * The service's replica processes that lead their process group: one per replica (the provider
 * starts each in a group of its own; the shell's children share it and carry the same id).
 */
function replicaLeaders(service: string): { pid: number; replicaId: string }[] {
  return replicaProcesses(service).filter(({ pid }) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pid;
    } catch {
      return false; // gone
    }
  });
}

/** The replica ids of the service's records in the provider's state dir. */
function providerRecords(service: string): string[] {
  const dir = path.join(stateDir, 'local', 'replicas');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.startsWith(`${service}-v`) && f.endsWith('.json'))
    .map((f) => f.slice(0, -'.json'.length))
    .sort();
}

/** Every pid seen per replica id while `fn` runs: two pids for one id is a replica started twice. */
async function watchingPids<T>(service: string, fn: () => Promise<T>): Promise<{ value: T; pids: Map<string, Set<number>> }> {
  const pids = new Map<string, Set<number>>();
  const sample = () => {
    for (const p of replicaLeaders(service)) {
      if (!pids.has(p.replicaId)) pids.set(p.replicaId, new Set());
      pids.get(p.replicaId)!.add(p.pid);
    }
  };
  const timer = setInterval(sample, 200);
  try {
    const value = await fn();
    sample();
    return { value, pids };
  } finally {
    clearInterval(timer);
  }
}

/** One rollout of `kind`, with the worker killed inside `point`'s activity (or no kill without one). */
async function runRollout(kind: Kind, point?: Point): Promise<PointResult> {
  const version = (versions.get(kind) ?? 0) + 1;
  const service = serviceOf(kind);
  const load = startLoad(`${router.trafficUrl}/${service}`, { clients: 2 });
  await load.until((r) => r.requests >= 10, `${service} answering through the router`);
  const started = Date.now();
  const outputFrom = workerOutput.length;
  let killedAt = '';
  let landed = false;
  let killed: Promise<void> | undefined;
  let armed = kind !== 'rollback'; // a rollback's point counts once the rollback was asked for
  let seen = 0;
  let rolloutId = `rollout-${service}-v${version}`;
  onActivity = (type, workflowId) => {
    if (!point || landed || !armed || type !== point.activity) return;
    if (workflowId !== rolloutId && workflowId !== serviceWorkflowId(service)) return;
    if (++seen < point.occurrence) return;
    landed = true;
    killedAt = new Date().toISOString();
    killed = killWorker().then(startWorker);
  };
  const { value: result, pids } = await watchingPids(service, async () => {
    const d = await deploy(kind, specOf(kind, version, { neverReady: kind === 'rollback' }));
    rolloutId = d.rolloutId;
    if (kind === 'rollback') {
      // Asked for once the new version's first replica exists (it never becomes ready).
      await waitUntil(async () => (await d.handle.query(rolloutStatusQuery)).replicas.some((r) => r.version === version), 'a replica of the new version');
      armed = true;
      await serviceHandle(kind).executeUpdate(controlUpdate, { args: [{ action: 'rollback', reason: 'chaos' }] });
    }
    const r = (await d.handle.result()) as RolloutResult;
    await serviceSettled(serviceHandle(kind), d.rolloutId);
    return r;
  });
  await killed;
  const seconds = (Date.now() - started) / 1000;
  const report = await load.stop();
  const status = await statusOf(kind);
  const statusIds = status.replicas.map((r) => r.id).sort();
  const live = replicaLeaders(service).map((p) => p.replicaId).sort();
  // Wait for the provider's records to settle: a terminated replica's record goes with it.
  await waitUntil(async () => JSON.stringify(providerRecords(service)) === JSON.stringify(statusIds), `${service}: provider records = status`).catch(() => undefined);
  const leaked = new Set([...live, ...providerRecords(service)].filter((id) => !statusIds.includes(id))).size;
  const startedTwice = [...pids.values()].filter((set) => set.size > 1).length;
  const baseline = baselines.get(kind);
  const pointResult: PointResult = {
    kind,
    activity: point?.activity ?? '-',
    occurrence: point?.occurrence ?? 0,
    landed,
    outcome: result.outcome,
    seconds: Math.round(seconds * 10) / 10,
    extraSeconds: baseline !== undefined ? Math.round((seconds - baseline) * 10) / 10 : undefined,
    requests: report.requests,
    failedRequests: report.failures.length,
    leaked,
    startedTwice,
  };
  if (point) results.push(pointResult);
  // CHAOS_TRACE=1: what the workers said during a point that took long (to find where the time went).
  if (process.env.CHAOS_TRACE === '1' && (pointResult.extraSeconds ?? 0) > 20) console.log(`[chaos] trace of ${JSON.stringify(pointResult)} (started ${new Date(started).toISOString()}, killed ${killedAt}):\n${workerOutput.slice(outputFrom)}`);
  console.log(`[chaos] ${JSON.stringify(pointResult)}${report.failures.length ? ` failures: ${report.failures.slice(0, 3).join(' | ')}` : ''}`);
  // The end state a crash-free rollout has.
  expect({ kind, outcome: result.outcome }).toEqual({ kind, outcome: kind === 'rollback' ? 'rolled_back' : 'succeeded' });
  const servingVersion = kind === 'rollback' ? version - 1 : version;
  expect(status.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(Array(specOf(kind, servingVersion).replicas).fill(`${kind === 'rollback' ? status.version : version}:READY`));
  expect({ kind, live, records: providerRecords(service) }).toEqual({ kind, live: statusIds, records: statusIds });
  expect({ kind, startedTwice }).toEqual({ kind, startedTwice: 0 });
  expect({ kind, failures: report.failures }).toEqual({ kind, failures: [] });
  return pointResult;
}

beforeAll(async () => {
  const built = path.join(ROOT, 'dist', 'worker.js');
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` (npm test's set-up does)`);
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-chaos-'));
  const token = crypto.randomBytes(16).toString('hex');
  const tokenFile = path.join(stateDir, 'router-token');
  fs.writeFileSync(tokenFile, token, { mode: 0o600 });
  bundlePath = path.join(stateDir, 'workflow-bundle.js');
  const [created, bundle] = await Promise.all([
    createLocalEnv(),
    bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'dist', 'workflows', 'index.js'), logger: { trace() {}, debug() {}, info() {}, warn() {}, log() {}, error: console.error } }),
  ]);
  env = created;
  fs.writeFileSync(bundlePath, bundle.code);
  router = await startRouter({ trafficPort: await freePort(), adminPort: await freePort(), token, closeGraceMs: 1000 });
  workerEnv = {
    TEMPORAL_ADDRESS: env.address,
    ROLLOUT_TASK_QUEUE: taskQueue,
    ROLLOUT_STATE_DIR: stateDir,
    ROLLOUT_GPUS: '8',
    ROUTER_ADMIN_URL: router.adminUrl,
    ROUTER_PUBLIC_URL: router.trafficUrl,
    ROUTER_TOKEN_FILE: tokenFile,
    CHAOS_BUNDLE: bundlePath,
    CHAOS_HELD_ACTIVITIES: QUICK.join(','),
  };
  await startWorker();
  // Every kind's first version, before any point (a first deploy of each service).
  for (const kind of KINDS) {
    const d = await deploy(kind, specOf(kind, 1));
    expect(((await d.handle.result()) as RolloutResult).outcome).toBe('succeeded');
    await serviceSettled(serviceHandle(kind), d.rolloutId);
  }
}, 300_000);

afterAll(async () => {
  onActivity = () => undefined;
  // The services would replace what cleanup removes: stop them first, then the worker.
  await Promise.all(KINDS.map((kind) => serviceHandle(kind).terminate('chaos over').catch(() => undefined)));
  await killWorker();
  if (stateDir) {
    // Only what this suite started: the replicas recorded in its own state dir.
    const cleaner = new LocalProvider({ stateDir: path.join(stateDir, 'local'), gpus: 0, logger: pino({ level: 'silent' }), terminateGraceMs: 2000 });
    await Promise.all((await cleaner.list()).map((r) => cleaner.terminate(r.replicaId)));
  }
  await router?.close();
  await env?.teardown();
  const landed = results.filter((r) => r.landed);
  const summary = {
    seed: SEED,
    pointsTried: results.length,
    pointsLanded: landed.length,
    rolloutsCompleted: results.filter((r) => r.outcome === (r.kind === 'rollback' ? 'rolled_back' : 'succeeded')).length,
    replicasLeaked: results.reduce((n, r) => n + r.leaked, 0),
    replicasStartedTwice: results.reduce((n, r) => n + r.startedTwice, 0),
    requests: results.reduce((n, r) => n + r.requests, 0),
    requestsFailed: results.reduce((n, r) => n + r.failedRequests, 0),
    kinds: [...new Set(landed.map((r) => r.kind))].sort(),
    activities: [...new Set(landed.map((r) => r.activity))].sort(),
    baselineSeconds: Object.fromEntries(baselines),
    maxExtraSeconds: Math.max(...landed.map((r) => r.extraSeconds ?? 0)),
    points: results,
  };
  console.log(`[chaos] seed ${SEED}: ${JSON.stringify({ ...summary, points: undefined })}`);
  if (process.env.RELIABILITY_REPORT === '1') {
    fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'worker-crash.json'), JSON.stringify(summary, null, 2) + '\n');
  }
  if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
}, 120_000);

/** CHAOS_ONLY=kind:activity:occurrence runs that one point CHAOS_POINTS times (to study one point). */
const only = process.env.CHAOS_ONLY?.split(':');
const points = only ? Array.from({ length: POINTS }, (): Point => ({ kind: only[0] as Kind, activity: only[1], occurrence: Number(only[2] ?? 1) })) : choosePoints(POINTS, SEED);

if (SOAK) {
  test.each(KINDS)('baseline: a %s rollout without a crash', async (kind) => {
    const r = await runRollout(kind);
    baselines.set(kind, r.seconds);
  }, 300_000);
}

test.each(points.map((p, i) => [i + 1, p.kind, p.activity, p.occurrence, p] as const))(
  `point %i (seed ${SEED}): %s rollout, worker killed in %s #%i`,
  async (_i, _kind, _activity, _occurrence, point) => {
    if (point.kind === 'in_place') {
      // Scaling up (an even version: 3 replicas) launches; scaling down drains and terminates: first
      // a crash-free step the other way when the point's activity is not in the next one.
      const scalesUp = ((versions.get('in_place') ?? 0) + 1) % 2 === 0;
      const downOnly = point.activity === 'retireReplicas';
      const upOnly = point.activity === 'startReplica';
      if ((scalesUp && downOnly) || (!scalesUp && upOnly)) await runRollout('in_place');
    }
    const result = await runRollout(point.kind, point);
    expect({ landed: result.landed }).toEqual({ landed: true });
  },
  300_000,
);
