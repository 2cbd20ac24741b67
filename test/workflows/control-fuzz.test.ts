/**
 * Fuzzing of the control inputs (the `control` update, on the rollout and forwarded by the
 * service workflow, and the pause/resume/advance/promote/rollback/setCanaryPercent signals) with
 * wrong payloads in every phase of a rollout: rolling out, held at a `{pause: {}}` step, paused,
 * manual hold, rolling back, finished (rolled back, succeeded). What it proves: no input crashes
 * a workflow task or leaves a workflow stuck; a wrong update is refused by the validator and
 * changes nothing; a wrong signal is recorded in `status.refused` (or ignored) and changes
 * nothing; afterwards a valid command still brings the rollout to its end. The same junk goes
 * through the two tools people use: our CLI (`rollout set-canary <svc> <junk>`) and the Temporal
 * CLI (`temporal workflow signal … --input '<junk json>'`).
 *
 * The Temporal server is the real time-skipping test server, the worker is real, activities are
 * in-memory fakes. Runs are bounded and seeded (FUZZ_SEED, printed in the test names), so a
 * failure replays. With RELIABILITY_REPORT=1 the counts go to bench/results/control-fuzz.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection, WorkflowNotFoundError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import fc from 'fast-check';
import type { ServiceSpec } from '../../src/spec/types';
import { resolveBinary, TEMPORAL_CLI } from '../../src/temporal/binaries';
import { controlUpdate, rolloutStatusQuery, serviceStatusQuery } from '../../src/workflows/messages';
import { CONTROL_ACTIONS, serviceWorkflowId, type ControlAction, type RolloutStatus, type ServiceStatus } from '../../src/workflows/types';
import type { FakeWorld } from '../helpers/fake-activities';
import { timeSkippingServerPerTest } from '../helpers/temporal-env';
import { serviceSpec, waitFor, workflowHarness } from '../helpers/workflow-harness';

const ROOT = path.resolve(__dirname, '..', '..');
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_201);
/** Runs per phase: in-process updates and signal batches; junk through spawned CLIs (each spawn costs ~0.5–1 s). */
const UPDATE_RUNS = 50;
const SIGNAL_RUNS = 20;
const CLI_RUNS = 8;
const TEMPORAL_CLI_RUNS = 8;

let env: TestWorkflowEnvironment;
const { withWorker, deploy, rolloutResult } = workflowHarness(() => env);
timeSkippingServerPerTest((created) => (env = created));

const counts = { updates: 0, signals: 0, cliCalls: 0, temporalCliSignals: 0, phases: [] as string[], seed: SEED };
/** Seconds each phase's fuzzing took: printed with the counts, not part of the report. */
const seconds: Record<string, number> = {};

afterAll(() => {
  console.log(`control fuzz: ${JSON.stringify(counts)}; seconds per phase: ${JSON.stringify(seconds)}`);
  // Only on request: a new file in a clean clone fails CI's "nothing changed" check.
  if (process.env.RELIABILITY_REPORT === '1') {
    fs.mkdirSync(path.join(ROOT, 'bench', 'results'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'bench', 'results', 'control-fuzz.json'), JSON.stringify(counts, null, 2) + '\n');
  }
});

// ── junk ──────────────────────────────────────────────────────────────────────

const ACTION_NAMES: readonly string[] = CONTROL_ACTIONS;
const HUGE = 100_000;

/** As the workflow receives it: Temporal's JSON payload converter turns NaN and ±Infinity into null. */
const asJson = (v: unknown): unknown => {
  const text = JSON.stringify(v);
  return text === undefined ? null : (JSON.parse(text) as unknown);
};
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Strings that look like numbers to someone (or to Number()), but are no percent. */
const numberLike = fc.constantFrom(
  '1e1', '0x20', '0b11', '0o17', 'NaN', 'Infinity', '-Infinity', '-0', '+5', '-5', '5.', '.5', '1_0', '101', '100.5', '1e-1', '10e0',
  '30%', '30%%', '3 0', '', ' ', 'null', 'true', '[30]', '{"percent":30}', '٣٠', '３０', 'ＮａＮ', '\u202e03', '30\u0000', 'thirty',
);
const unicode = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('\u0000', '\ud800', '\udfff', 'e\u0301', '🙂', '\u200b', '\ufeff', '\u2028', 'Ω≈ç√∫'),
);
const extremeNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(-1, -0.5, -Number.MIN_VALUE, 100.000001, 101, 1e21, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, 2 ** 64),
);
/**
 * 100 kB and a little more as JSON (what travels and is stored), of one unit: a NUL takes 6 bytes
 * there, an emoji 4. A digit string of that length is Infinity to Number().
 */
const hugeString = fc
  .tuple(fc.constantFrom('x', 'é', '🙂', '9', ' 5', '\u0000'), fc.integer({ min: 0, max: 1000 }))
  .map(([unit, extra]) => unit.repeat(Math.ceil((HUGE + extra) / (Buffer.byteLength(JSON.stringify(unit)) - 2))));
/** Nested hundreds to thousands of levels deep, as arrays or as `{percent: {percent: …}}`. */
const deeplyNested = fc.tuple(fc.integer({ min: 100, max: 3000 }), fc.boolean(), fc.jsonValue({ maxDepth: 1 })).map(([depth, asArray, leaf]) => {
  let v: unknown = leaf;
  for (let i = 0; i < depth; i++) v = asArray ? [v] : { percent: v };
  return v;
});
/** Keys that trip code which coerces or walks objects (as parsed from JSON: own properties). */
const hostileObject = fc.constantFrom(
  '{"toString":1}',
  '{"valueOf":"x","toString":[]}',
  '{"__proto__":{"percent":30}}',
  '{"constructor":{"prototype":{"percent":30}}}',
  '{"percent":{"toString":1}}',
  '{"toJSON":5}',
  '{"percent":[30]}',
  '{"percent":"30%"}',
  '{"percent":null}',
  '{"percent":"1e1"}',
  '{"action":"promote"}',
  '[{"toString":1}]',
).map((text) => JSON.parse(text) as unknown);

/** Any wrong value: wrong types, extreme numbers, NaN-like and unicode strings, 100 kB strings, deep nesting. */
const junkValue: fc.Arbitrary<unknown> = fc
  .oneof(
    { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 4 }) },
    { weight: 2, arbitrary: numberLike },
    { weight: 2, arbitrary: unicode },
    { weight: 2, arbitrary: extremeNumber },
    { weight: 2, arbitrary: hostileObject },
    { weight: 1, arbitrary: hugeString },
    { weight: 1, arbitrary: deeplyNested },
  )
  .map(asJson);

/**
 * A control request the rollout's validator must take for its form (whether it applies in the
 * phase is another matter): a known action; setCanaryPercent with a number 0–100; rollback with a
 * text reason or none. Other fields are ignored (as the signals ignore their payloads).
 */
function wellFormedRequest(v: unknown): boolean {
  if (!isObject(v)) return false;
  const { action, percent, reason } = v;
  if (typeof action !== 'string' || !ACTION_NAMES.includes(action)) return false;
  if (action === 'setCanaryPercent') return typeof percent === 'number' && Number.isFinite(percent) && percent >= 0 && percent <= 100;
  if (action === 'rollback') return reason === undefined || reason === null || typeof reason === 'string';
  return true;
}

/** What a setCanaryPercent signal may carry (messages.ts): a number 0–100, a decimal string of one, or `{percent: that}`. */
function acceptablePercentSignal(arg: unknown): boolean {
  const raw = isObject(arg) && Object.prototype.hasOwnProperty.call(arg, 'percent') ? arg.percent : arg;
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : Number.NaN;
  return Number.isFinite(n) && n >= 0 && n <= 100;
}

const extraFields = fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });
const misspelledAction = fc
  .constantFrom(...CONTROL_ACTIONS)
  .chain((a) => fc.constantFrom(a.toUpperCase(), ` ${a}`, `${a} `, `${a}\u0000`, `${a}\u200b`, a[0].toUpperCase() + a.slice(1), 'set-canary', 'rollBack', 'roll back'));

/** Wrong update requests; plus well-formed ones that `refusedHere` says this phase refuses. */
function junkRequest(refusedHere: readonly ControlAction[]): fc.Arbitrary<unknown> {
  const wrong = fc
    .oneof(
      junkValue, // not an object, or an object without a known action
      fc.tuple(extraFields, junkValue).map(([extra, action]) => ({ ...extra, action })),
      fc.tuple(extraFields, misspelledAction).map(([extra, action]) => ({ ...extra, action })),
      fc.tuple(extraFields, fc.option(junkValue, { nil: undefined })).map(([extra, percent]) => ({ ...extra, action: 'setCanaryPercent', percent })),
      fc.tuple(extraFields, junkValue).map(([extra, reason]) => ({ ...extra, action: 'rollback', reason })),
    )
    .map(asJson)
    .filter((v) => !wellFormedRequest(v));
  if (refusedHere.length === 0) return wrong;
  const notNow = fc.constantFrom(...refusedHere).map((action) => (action === 'setCanaryPercent' ? { action, percent: 40 } : { action }));
  return fc.oneof({ weight: 4, arbitrary: wrong }, { weight: 1, arbitrary: notNow });
}

/** A signal with a wrong payload: setCanaryPercent with no percent, or one a phase refuses whatever it carries. */
function junkSignal(refusedHere: readonly ControlAction[]): fc.Arbitrary<{ name: ControlAction; payload: unknown }> {
  return fc
    .record({ name: fc.constantFrom(...refusedHere), payload: junkValue })
    .filter(({ name, payload }) => name !== 'setCanaryPercent' || !acceptablePercentSignal(payload));
}

/** Junk a person might type as `rollout set-canary <svc> <percent>` (no NUL: it cannot be in argv). */
const junkPercentText = fc
  .oneof(
    numberLike,
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.integer({ min: -1000, max: 100_000 }).filter((n) => n < 0 || n > 100).map(String),
    fc.double({ min: 0, max: 100, noNaN: true }).filter((n) => !Number.isInteger(n)).map(String),
    fc.constantFrom('x', 'é', '9', '🙂').map((unit) => unit.repeat(Math.floor(HUGE / Buffer.byteLength(unit)))),
  )
  .filter((text) => !text.includes('\u0000') && !/^\s*(\d{1,2}|100)%?\s*$/.test(text));

/**
 * What `temporal workflow signal --input` can carry: a wrong percent as JSON text that fits in one
 * argument (Linux takes at most 128 kB; JSON makes a NUL six bytes).
 */
const junkArgument = junkValue.filter((v) => !acceptablePercentSignal(v) && Buffer.byteLength(JSON.stringify(v)) <= 120_000);

// ── the rollout under test ────────────────────────────────────────────────────

/** Steps: 50%, then hold until told, so each phase can be reached and stays put. */
const held = (name: string, version: string): ServiceSpec =>
  serviceSpec({ name, version, replicas: 2, rollout: { strategy: 'canary', max_surge: 1, max_unavailable: 0, timeout: '120m', steps: [{ weight: 50 }, { pause: {} }] } });

const handleOf = (id: string): WorkflowHandle => env.client.workflow.getHandle(id);

/** A backstop for "stuck": a call that gets no answer fails the test instead of hanging it. */
async function answered<T>(p: Promise<T>, what: string, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s (a stuck workflow?)`)), ms);
  });
  try {
    return await Promise.race([p, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

const statusOf = (id: string): Promise<RolloutStatus> => answered(handleOf(id).query(rolloutStatusQuery), `status of ${id}`);
const serviceOf = (service: string): Promise<ServiceStatus> => answered(handleOf(serviceWorkflowId(service)).query(serviceStatusQuery), `status of ${service}`);

/** The fields a control message could change: a refused one must leave every one as it was. */
const essentials = (s: RolloutStatus) => ({
  phase: s.phase,
  mode: s.mode,
  reason: s.reason,
  canaryPercent: s.canaryPercent,
  targetPercent: s.targetPercent,
  stepIndex: s.stepIndex,
  replicas: s.replicas.map((r) => `${r.id}:v${r.version}:${r.status}`).sort(),
  traffic: s.traffic,
});
type Essentials = ReturnType<typeof essentials>;
const serviceEssentials = (s: ServiceStatus) => ({
  version: s.version,
  nextVersion: s.nextVersion,
  activeRollout: s.activeRollout,
  lastRollout: s.lastRollout,
  replicas: s.replicas.map((r) => `${r.id}:v${r.version}:${r.status}`).sort(),
  traffic: s.traffic,
});
type ServiceEssentials = ReturnType<typeof serviceEssentials>;

/** Waits until the rollout's status satisfies `ok`; returns that status. */
async function reach(id: string, ok: (s: RolloutStatus) => boolean, what: string): Promise<RolloutStatus> {
  let last: RolloutStatus | undefined;
  try {
    await waitFor(async () => ok((last = await statusOf(id))), 60_000, what);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last status: ${JSON.stringify(last && essentials(last))}`);
  }
  return last!;
}

const countOf = (s: RolloutStatus, version: number, status: string) => s.replicas.filter((r) => r.version === version && r.status === status).length;
/** Replicas of `version` on their way up: PROVISIONING (a batched rollout's start is one activity) or STARTING. */
const loadingOf = (s: RolloutStatus, version: number) => countOf(s, version, 'PROVISIONING') + countOf(s, version, 'STARTING');

/**
 * A history on a connection of our own: the fuzzed ones pass the 4 MB a gRPC message may carry by
 * default, which is what the SDK's connection takes (its 128 MB setting lacks the "grpc." prefix
 * grpc-js reads), and the time-skipping server sends a history in one message, whatever the page size.
 */
let historyReader: { address: string; connection: Connection; client: Client } | undefined;
async function historyOf(workflowId: string) {
  if (historyReader?.address !== env.address) {
    await historyReader?.connection.close();
    const connection = await Connection.connect({ address: env.address, channelArgs: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 } });
    historyReader = { address: env.address, connection, client: new Client({ connection }) };
  }
  return answered(historyReader.client.workflow.getHandle(workflowId).fetchHistory(), `history of ${workflowId}`);
}
afterAll(async () => {
  await historyReader?.connection.close();
});

/** No workflow task of the workflow failed: a handler that threw, or an unhandled rejection, would show here. */
async function expectNoFailedWorkflowTask(workflowId: string): Promise<void> {
  const history = await historyOf(workflowId);
  const failed = (history.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes);
  expect(failed.map((e) => `${workflowId} #${String(e.eventId)}: ${e.workflowTaskFailedEventAttributes?.failure?.message ?? '?'}`)).toEqual([]);
}

/** The workflow has handled every signal it was sent: a workflow task completed after the last one. */
async function signalsHandled(workflowId: string): Promise<void> {
  await waitFor(
    async () => {
      const events = (await historyOf(workflowId)).events ?? [];
      const lastIndex = (has: (e: (typeof events)[number]) => unknown) => events.reduce((last, e, i) => (has(e) ? i : last), -1);
      return lastIndex((e) => e.workflowTaskCompletedEventAttributes) > lastIndex((e) => e.workflowExecutionSignaledEventAttributes);
    },
    60_000,
    `${workflowId} to handle its signals`,
  );
}

interface Phase {
  name: string;
  service: string;
  rolloutId: string;
  /** Well-formed requests this phase refuses (the README's table). */
  refusedUpdates: readonly ControlAction[];
  /** Signals this phase refuses whatever they carry. */
  refusedSignals: readonly ControlAction[];
  finished: boolean;
}

let seedOffset = 0;

/**
 * Checks a property with this file's seed (one per property, in order) and without shrinking (a
 * run can cost seconds). A failure names its seed and path to replay it, with the counterexample
 * clipped: it may be 100 kB of text.
 */
async function holds<Ts extends unknown[]>(property: fc.IAsyncProperty<Ts>, numRuns: number, examples: Ts[] = []): Promise<void> {
  const details = await fc.check(property, { numRuns, seed: SEED + ++seedOffset, endOnFailure: true, examples });
  if (!details.failed) return;
  const clip = (text: string) => (text.length > 1500 ? `${text.slice(0, 1500)}… (${text.length} characters)` : text);
  const cause = details.errorInstance instanceof Error ? (details.errorInstance.stack ?? details.errorInstance.message) : String(details.errorInstance);
  throw new Error(
    `property failed after ${details.numRuns} run(s); replay with FUZZ_SEED=${SEED} (this property: seed ${details.seed}, path "${details.counterexamplePath}")\n` +
      `counterexample: ${details.counterexample === null ? 'none' : clip(fc.stringify(details.counterexample))}\n${clip(cause)}`,
  );
}

/** Wrong updates, on the rollout and through the service workflow: each refused, nothing changed. */
async function fuzzUpdates(phase: Phase, before: Essentials, serviceBefore: ServiceEssentials): Promise<void> {
  await holds(
    fc.asyncProperty(fc.constantFrom('rollout', 'service'), junkRequest(phase.refusedUpdates), async (via, request) => {
      counts.updates++;
      const target = via === 'rollout' ? phase.rolloutId : serviceWorkflowId(phase.service);
      // A malformed request is refused before it enters any history: the service's (which lives as
      // long as the service) must not grow by it. Well-formed ones are forwarded, then refused.
      const eventsBefore = via === 'service' && !wellFormedRequest(request) ? (await handleOf(target).describe()).historyLength : undefined;
      const outcome = await answered(
        handleOf(target)
          .executeUpdate('control', { args: [request] })
          .then(
            (accepted: unknown) => ({ accepted }),
            (err: unknown) => ({ err }),
          ),
        `control update ${JSON.stringify(request)?.slice(0, 200)} on ${target}`,
      );
      expect(outcome).not.toHaveProperty('accepted');
      const { err } = outcome as { err: unknown };
      if (phase.finished && via === 'rollout') {
        expect(err).toBeInstanceOf(WorkflowNotFoundError); // the workflow is closed: the server says so
      } else {
        expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
        const why = (err as WorkflowUpdateFailedError).cause?.message ?? '';
        expect(why).not.toBe('');
        expect(why).not.toMatch(/TypeError|Cannot read|is not a function|Maximum call stack/);
      }
      // (The time-skipping server records the workflow task that ran the validator: 3 events. An
      // accepted, forwarded and refused request adds at least the update's and its activity's 6.)
      if (eventsBefore !== undefined) expect((await handleOf(target).describe()).historyLength - eventsBefore).toBeLessThanOrEqual(3);
      // A closed rollout's query replays its whole history (seconds, after all this): once at the end.
      if (!phase.finished) expect(essentials(await statusOf(phase.rolloutId))).toEqual(before);
      expect(serviceEssentials(await serviceOf(phase.service))).toEqual(serviceBefore);
    }),
    UPDATE_RUNS,
    // Inputs that once crashed a handler or slipped through, tried first in every phase.
    [
      ['rollout', { action: 'rollback', reason: { toString: 1 } }],
      ['service', null],
      ['service', { action: { toString: 1 } }],
      ['service', { action: 'x'.repeat(HUGE) }],
      ['rollout', { action: 'setCanaryPercent', percent: '1e1' }],
      ['service', { action: 'setCanaryPercent', percent: '0x20' }],
    ],
  );
}

let sentinelSeq = 0;

/**
 * Wrong signals, to the rollout and to the service (which forwards them). Each batch ends with a
 * sentinel (a setCanaryPercent the rollout refuses and echoes): once it is in `refused`, every
 * signal before it was handled (one sender, one path: Temporal keeps their order).
 */
async function fuzzSignals(phase: Phase, before: Essentials, serviceBefore: ServiceEssentials): Promise<void> {
  const service = serviceWorkflowId(phase.service);
  await holds(
    fc.asyncProperty(fc.constantFrom('rollout', 'service'), fc.array(junkSignal(phase.refusedSignals), { minLength: 1, maxLength: 4 }), async (via, batch) => {
      counts.signals += batch.length;
      const target = via === 'rollout' ? phase.rolloutId : service;
      if (phase.finished) {
        for (const { name, payload } of batch) {
          const sent = await answered(
            handleOf(target)
              .signal(name, payload)
              .then(
                () => undefined,
                (err: unknown) => err,
              ),
            `${name} signal`,
          );
          // The finished rollout takes no signal (the server refuses it); the service ignores it.
          if (via === 'rollout') expect(sent).toBeInstanceOf(WorkflowNotFoundError);
          else expect(sent).toBeUndefined();
        }
        if (via === 'service') await signalsHandled(service);
      } else {
        const sentinel = `fuzz-sentinel-${++sentinelSeq}`;
        for (const { name, payload } of batch) await answered(handleOf(target).signal(name, payload), `${name} signal`);
        await answered(handleOf(target).signal('setCanaryPercent', sentinel), 'sentinel signal');
        const after = await reach(phase.rolloutId, (s) => (s.refused[s.refused.length - 1] ?? '').includes(sentinel), `the sentinel ${sentinel} in refused`);
        // Each signal of the batch is there, in order, by name, just before the sentinel.
        const recorded = after.refused.slice(-1 - batch.length, -1);
        expect(recorded.map((line) => line.split(':')[0])).toEqual(batch.map((s) => s.name));
        expect(essentials(after)).toEqual(before);
      }
      expect(serviceEssentials(await serviceOf(phase.service))).toEqual(serviceBefore);
    }),
    SIGNAL_RUNS,
    [
      ['rollout', [{ name: 'setCanaryPercent', payload: '1e1' }]],
      ['service', [{ name: 'setCanaryPercent', payload: { percent: '0x20' } }]],
    ],
  );
}

async function fuzzPhase(phase: Phase): Promise<void> {
  counts.phases.push(phase.name);
  const started = Date.now();
  // One state for the whole phase: neither the updates nor the signals may move it.
  const before = essentials(await statusOf(phase.rolloutId));
  const serviceBefore = serviceEssentials(await serviceOf(phase.service));
  await fuzzUpdates(phase, before, serviceBefore);
  seconds[`${phase.name}:updates`] = (Date.now() - started) / 1000;
  await fuzzSignals(phase, before, serviceBefore);
  seconds[`${phase.name}:signals`] = (Date.now() - started) / 1000 - seconds[`${phase.name}:updates`];
  expect(essentials(await statusOf(phase.rolloutId))).toEqual(before);
  await expectNoFailedWorkflowTask(phase.rolloutId);
  await expectNoFailedWorkflowTask(serviceWorkflowId(phase.service));
}

const ALL: readonly ControlAction[] = CONTROL_ACTIONS;

describe(`control inputs fuzzed in every phase (seed ${SEED})`, () => {
  test(
    'wrong updates are refused and wrong signals recorded, changing nothing; the rollout still ends as told',
    async () => {
      await withWorker({}, async (world: FakeWorld, tq) => {
        const service = 'fz';
        await rolloutResult((await deploy(tq, held(service, 'v1'))).rolloutWorkflowId);

        // Rolling out, mid-way: v2's replica stays loading until released.
        const release2 = world.hold(2);
        const id = (await deploy(tq, held(service, 'v2'))).rolloutWorkflowId;
        await reach(id, (s) => s.phase === 'rolling_out' && loadingOf(s, 2) === 1 && countOf(s, 1, 'READY') === 2, 'v2 loading');
        const phase = (name: string, refusedUpdates: readonly ControlAction[], refusedSignals: readonly ControlAction[]): Phase => ({
          name,
          service,
          rolloutId: id,
          refusedUpdates,
          refusedSignals,
          finished: false,
        });
        await fuzzPhase(phase('rolling_out', ['resume'], ['resume', 'setCanaryPercent']));

        // Held at the {pause: {}} step, 50%.
        release2();
        const atPause = (s: RolloutStatus) => s.phase === 'rolling_out' && s.stepIndex === 1 && s.canaryPercent === 50 && s.replicas.length === 2 && countOf(s, 1, 'READY') === 1 && countOf(s, 2, 'READY') === 1;
        await reach(id, atPause, 'held at {pause: {}}');
        await fuzzPhase(phase('held_at_pause_step', [], ['setCanaryPercent']));

        await handleOf(id).executeUpdate(controlUpdate, { args: [{ action: 'pause' }] });
        await reach(id, (s) => s.phase === 'paused', 'paused');
        await fuzzPhase(phase('paused', ['pause'], ['pause', 'setCanaryPercent']));

        await handleOf(id).executeUpdate(controlUpdate, { args: [{ action: 'setCanaryPercent', percent: 10 }] });
        await reach(id, (s) => s.phase === 'manual' && s.canaryPercent === 10 && countOf(s, 1, 'READY') === 2 && s.replicas.length === 3, 'manual hold at 10%');
        await fuzzPhase(phase('manual', ['pause'], ['pause', 'setCanaryPercent']));

        // Back to the steps (50%, then the pause step), then a rollback that stays in progress:
        // v1's new replica loads until released.
        await handleOf(id).executeUpdate(controlUpdate, { args: [{ action: 'resume' }] });
        await reach(id, atPause, 'back at {pause: {}}');
        const release1 = world.hold(1);
        // A valid command through the service workflow, after all that junk.
        await handleOf(serviceWorkflowId(service)).executeUpdate(controlUpdate, { args: [{ action: 'rollback', reason: 'fuzz' }] });
        await reach(id, (s) => s.phase === 'rolling_back' && loadingOf(s, 1) === 1, 'rolling back, v1 loading');
        await fuzzPhase(phase('rolling_back', ALL, ALL));

        release1();
        const rolledBack = await rolloutResult(id);
        expect(rolledBack).toMatchObject({ outcome: 'rolled_back', reason: 'manual rollback: fuzz', servingVersion: 1 });
        await fuzzPhase({ ...phase('rolled_back', ALL, ALL), finished: true });

        // Another rollout, ended by a promote signal that carries junk (the signal takes no payload).
        const id3 = (await deploy(tq, held(service, 'v3'))).rolloutWorkflowId;
        await reach(id3, (s) => s.stepIndex === 1 && s.canaryPercent === 50, 'v3 held at {pause: {}}');
        await handleOf(id3).signal('promote', { percent: 'junk', nested: [[[{}]]] });
        expect(await rolloutResult(id3)).toMatchObject({ outcome: 'succeeded', servingVersion: 3 });
        await fuzzPhase({ ...phase('succeeded', ALL, ALL), rolloutId: id3, finished: true });

        const final = await serviceOf(service);
        expect(final.version).toBe(3);
        expect(final.activeRollout).toBeUndefined();
        expect(final.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['3:READY', '3:READY']);
      });
    },
    180_000,
  );

  test(
    'megabytes of junk: refusals stay short, so the status and the control answers are still delivered',
    async () => {
      await withWorker({}, async (_world: FakeWorld, tq) => {
        const service = 'fzbig';
        await rolloutResult((await deploy(tq, held(service, 'v1'))).rolloutWorkflowId);
        const id = (await deploy(tq, held(service, 'v2'))).rolloutWorkflowId;
        const before = essentials(await reach(id, (s) => s.stepIndex === 1 && s.canaryPercent === 50 && s.replicas.length === 2, 'held at {pause: {}}'));
        // Backslashes double in each JSON encoding: 1.2 MB payloads (under Temporal's 2 MB limit)
        // whose echoes, unclipped, would make a status of more than the 4 MB a gRPC message may carry.
        const big = '\\'.repeat(600_000);
        const update = await answered(handleOf(id).executeUpdate('control', { args: [{ action: big }] }).catch((e: unknown) => e), 'a 1 MB control update');
        counts.updates++;
        expect(update).toBeInstanceOf(WorkflowUpdateFailedError);
        expect(String((update as WorkflowUpdateFailedError).cause?.message).length).toBeLessThan(300);
        for (const payload of [big, { percent: big }, [big]]) await handleOf(id).signal('setCanaryPercent', payload);
        counts.signals += 3;
        await handleOf(id).signal('setCanaryPercent', 'fuzz-sentinel-big');
        const after = await reach(id, (s) => (s.refused[s.refused.length - 1] ?? '').includes('fuzz-sentinel-big'), 'the sentinel in refused');
        expect(after.refused).toHaveLength(4);
        for (const line of after.refused) expect(line.length).toBeLessThan(400);
        expect(essentials(after)).toEqual(before);
        const promoted = await answered(handleOf(id).executeUpdate(controlUpdate, { args: [{ action: 'promote' }] }), 'promote');
        expect(promoted.refused).toEqual(after.refused);
        expect(await rolloutResult(id)).toMatchObject({ outcome: 'succeeded', servingVersion: 2 });
        await expectNoFailedWorkflowTask(id);
      });
    },
    120_000,
  );

  test(
    'signals the service forwards to a rollout that has closed are dropped: no failed workflow task, the service still answers',
    async () => {
      await withWorker({}, async (world: FakeWorld, tq) => {
        const service = 'fzrace';
        await rolloutResult((await deploy(tq, held(service, 'v1'))).rolloutWorkflowId);
        world.hold(2); // never released: the rollout is terminated mid-way
        const id = (await deploy(tq, held(service, 'v2'))).rolloutWorkflowId;
        await reach(id, (s) => loadingOf(s, 2) === 1, 'v2 loading');
        // On a real server this is a race: a user's signal reaching the service just as its rollout
        // finishes. The time-skipping server does not tell a parent that its child was terminated,
        // so here the service keeps the closed rollout as its active one and forwards every signal
        // to a closed workflow: the race, made certain.
        await handleOf(id).terminate('fuzz: closed under its signals');
        const serviceHandle = handleOf(serviceWorkflowId(service));
        const signals: [ControlAction, unknown][] = [...CONTROL_ACTIONS.map((a): [ControlAction, unknown] => [a, null]), ['setCanaryPercent', 30], ['setCanaryPercent', '1e1'], ['rollback', { reason: 'late' }]];
        counts.signals += signals.length;
        for (const [name, payload] of signals) await serviceHandle.signal(name, payload);
        await signalsHandled(serviceWorkflowId(service));
        const events = (await historyOf(serviceWorkflowId(service))).events ?? [];
        expect(events.filter((e) => e.signalExternalWorkflowExecutionFailedEventAttributes).length).toBeGreaterThan(0);
        await expectNoFailedWorkflowTask(serviceWorkflowId(service));
        // Still answering: a query, and a control update (refused: its rollout is gone).
        expect((await serviceOf(service)).version).toBe(1);
        counts.updates++;
        const refused = await answered(serviceHandle.executeUpdate(controlUpdate, { args: [{ action: 'promote' }] }).catch((e: unknown) => e), 'control update');
        expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
        await expectNoFailedWorkflowTask(serviceWorkflowId(service));
      });
    },
    120_000,
  );

  test(
    "a large signal payload enters the service's history once: the rollout gets it compacted (junk as a short text, a reason clipped)",
    async () => {
      await withWorker({}, async (_world: FakeWorld, tq) => {
        const service = 'fzbig';
        await rolloutResult((await deploy(tq, held(service, 'v1'))).rolloutWorkflowId);
        const id = (await deploy(tq, held(service, 'v2'))).rolloutWorkflowId;
        await reach(id, (s) => s.stepIndex === 1 && s.canaryPercent === 50, 'v2 held at its pause step');
        const junk = 'x'.repeat(200_000);
        const serviceHandle = handleOf(serviceWorkflowId(service));
        counts.signals += 2;
        await serviceHandle.signal('setCanaryPercent', { percent: junk });
        await serviceHandle.signal('rollback', { reason: `why ${'y'.repeat(200_000)}` });
        await signalsHandled(serviceWorkflowId(service));
        const serviceBytes = JSON.stringify(await historyOf(serviceWorkflowId(service))).length;
        // Each payload once (base64 in the JSON: 4/3 of 200 KB), not twice.
        expect(serviceBytes).toBeLessThan(2 * 200_000 * (4 / 3) + 200_000);
        const s = await reach(id, (st) => st.phase === 'rolled_back' || st.phase === 'rolling_back', 'the rollback');
        expect(s.refused.some((r) => r.includes('<text of 200000 characters>'))).toBe(true);
        const rolloutBytes = JSON.stringify(await historyOf(id)).length;
        expect(rolloutBytes).toBeLessThan(100_000);
        const result = await rolloutResult(id);
        expect(result.reason).toContain(`why ${'y'.repeat(100)}`);
        expect(result.reason).toContain('… (200004 characters)');
        await expectNoFailedWorkflowTask(serviceWorkflowId(service));
      });
    },
    120_000,
  );
});

// ── the same junk through the tools people use ────────────────────────────────

/** Runs a program to its end without blocking this process (its worker has to keep answering). */
function run(command: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The compiled CLI is what bin/rollout.js runs: rebuilt only when a source it is built from is newer. */
function ensureBuilt(): void {
  const built = path.join(ROOT, 'dist', 'cli', 'main.js');
  const builtAt = fs.existsSync(built) ? fs.statSync(built).mtimeMs : 0;
  const sources = [path.join(ROOT, 'src', 'cli'), path.join(ROOT, 'src', 'workflows'), path.join(ROOT, 'src', 'temporal')];
  const newer = sources.some((dir) => fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).some((f) => f.endsWith('.ts') && fs.statSync(path.join(dir, f)).mtimeMs > builtAt));
  if (newer) {
    // tsc emits even with type errors elsewhere (someone's work in progress): the CLI's files are what count.
    const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' });
    if (!fs.existsSync(built)) throw new Error(`the build made no ${built}: ${r.stdout}${r.stderr}`);
  }
}

describe(`control inputs from the command line (seed ${SEED})`, () => {
  test(
    '`rollout set-canary <svc> <junk>` exits 2 and changes nothing; junk `temporal workflow signal` payloads are recorded and ignored',
    async () => {
      ensureBuilt();
      const temporal = resolveBinary(TEMPORAL_CLI, { install: false });
      if (!temporal) throw new Error('the temporal CLI is not installed (.venv/bin/temporal): run `npm run setup`');
      await withWorker({}, async (world: FakeWorld, tq) => {
        const service = 'fzcli';
        const rolloutCli = (...args: string[]) => {
          counts.cliCalls++;
          return run(process.execPath, [path.join(ROOT, 'bin', 'rollout.js'), ...args], { TEMPORAL_ADDRESS: env.address, TEMPORAL_NAMESPACE: 'default' });
        };
        const temporalSignal = (workflowId: string, input: unknown) => {
          counts.temporalCliSignals++;
          return run(temporal, ['workflow', 'signal', '--address', env.address, '--workflow-id', workflowId, '--name', 'setCanaryPercent', '--input', JSON.stringify(input)]);
        };

        await rolloutResult((await deploy(tq, held(service, 'v1'))).rolloutWorkflowId);
        const id = (await deploy(tq, held(service, 'v2'))).rolloutWorkflowId;
        const atPause = await reach(id, (s) => s.stepIndex === 1 && s.canaryPercent === 50 && s.replicas.length === 2, 'held at {pause: {}}');
        const before = essentials(atPause);

        // Our CLI: a junk percent is refused before anything is sent.
        await holds(
          fc.asyncProperty(junkPercentText, async (junk) => {
            // Text starting with "-" needs "--" to be a percent at all (else it is an unknown option: exit 2 as well).
            const r = await rolloutCli('set-canary', service, ...(junk.startsWith('-') ? ['--', junk] : [junk]));
            expect(r.code).toBe(2);
            expect(r.stderr).toMatch(/^error: expected a whole percent from 0 to 100 in decimal digits \(e\.g\. 30 or 30%\), got /);
            expect(essentials(await statusOf(id))).toEqual(before);
          }),
          CLI_RUNS,
        );

        // A well-formed request this phase refuses: exit 2 with the rollout's reason.
        expect((await rolloutCli('pause', service)).code).toBe(0);
        const paused = await rolloutCli('pause', service);
        expect(paused).toMatchObject({ code: 2 });
        expect(paused.stderr).toMatch(/pause refused by rollout-fzcli-v2: already paused/);
        const pausedState = essentials(await reach(id, (s) => s.phase === 'paused', 'paused'));

        // The Temporal CLI: junk payloads are delivered (exit 0), recorded in refused and ignored.
        await holds(
          fc.asyncProperty(fc.constantFrom(id, serviceWorkflowId(service)), junkArgument, async (target, junk) => {
            const r = await temporalSignal(target, junk);
            expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
            const sentinel = `fuzz-sentinel-${++sentinelSeq}`;
            await handleOf(target).signal('setCanaryPercent', sentinel);
            const after = await reach(id, (s) => (s.refused[s.refused.length - 1] ?? '').includes(sentinel), `the sentinel ${sentinel}`);
            expect(after.refused[after.refused.length - 2]).toMatch(/^setCanaryPercent: needs a percent from 0 to 100, got /);
            expect(essentials(after)).toEqual(pausedState);
          }),
          TEMPORAL_CLI_RUNS,
        );

        // Rolling back (v1's replica loads until released): every command is refused, exit 2.
        const release1 = world.hold(1);
        expect((await rolloutCli('rollback', service, '--reason', 'cli fuzz')).code).toBe(0);
        const backing = essentials(await reach(id, (s) => s.phase === 'rolling_back' && loadingOf(s, 1) === 1, 'rolling back'));
        const setDuringRollback = await rolloutCli('set-canary', service, '50');
        expect(setDuringRollback.code).toBe(2);
        expect(setDuringRollback.stderr).toMatch(/set-canary refused by rollout-fzcli-v2: the rollout is rolling back \(manual rollback: cli fuzz\)/);
        const junkDuringRollback = await rolloutCli('set-canary', service, '0x20');
        expect(junkDuringRollback.code).toBe(2);
        const viaTemporal = await temporalSignal(id, '1e1');
        expect(viaTemporal.code).toBe(0);
        await reach(id, (s) => (s.refused[s.refused.length - 1] ?? '').includes('"1e1"'), 'the 1e1 signal in refused');
        expect(essentials(await statusOf(id))).toEqual(backing);

        release1();
        expect(await rolloutResult(id)).toMatchObject({ outcome: 'rolled_back', reason: 'manual rollback: cli fuzz' });
        // Finished: nothing to control (exit 2); the Temporal CLI cannot signal a closed rollout,
        // and the service ignores the signal.
        const idle = await rolloutCli('set-canary', service, '30');
        expect(idle.code).toBe(2);
        expect(idle.stderr).toMatch(/fzcli has no rollout in progress \(serving v1\); nothing to set-canary/);
        expect((await rolloutCli('set-canary', service, 'NaN')).code).toBe(2);
        expect((await temporalSignal(id, 50)).code).not.toBe(0);
        const serviceBefore = serviceEssentials(await serviceOf(service));
        expect((await temporalSignal(serviceWorkflowId(service), { percent: '1e1' })).code).toBe(0);
        await signalsHandled(serviceWorkflowId(service));
        expect(serviceEssentials(await serviceOf(service))).toEqual(serviceBefore);

        await expectNoFailedWorkflowTask(id);
        await expectNoFailedWorkflowTask(serviceWorkflowId(service));
        counts.phases.push('cli:held_at_pause_step', 'cli:paused', 'cli:rolling_back', 'cli:rolled_back');
      });
    },
    180_000,
  );
});
