#!/usr/bin/env node
/**
 * `npm run chaos`: the reliability soak. Runs, with RELIABILITY_REPORT=1 so each writes its own
 * figures to bench/results/*.json:
 *   - the worker-crash chaos suite with CHAOS_POINTS (default 50) points and a new seed
 *     (CHAOS_SEED=<seed> replays one), after a crash-free baseline of each rollout kind;
 *   - the replica-fault suite (30% transient provider errors, slow calls, a replica killed, one hung);
 *   - the control-input fuzz (updates and signals, every phase, the CLI and `temporal workflow signal`);
 *   - the spec fuzz (FUZZ_RUNS per property);
 *   - the history replay;
 * then merges them into bench/results/reliability.json and prints the README's table.
 * Exit code: non-zero when a suite failed or a chaos point took more than 15 s longer than its
 * crash-free baseline.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(ROOT, 'bench', 'results');
const PARTS = ['worker-crash', 'replica-faults', 'control-fuzz', 'spec-fuzz'];
const EXTRA_SECONDS_ALLOWED = 15;

const suites = [
  'test/chaos/worker-crash.test.ts',
  'test/e2e/replica-faults.e2e.test.ts',
  'test/workflows/control-fuzz.test.ts',
  'test/spec/fuzz.test.ts',
  'test/workflows/replay.test.ts',
];

for (const part of PARTS) fs.rmSync(path.join(RESULTS, `${part}.json`), { force: true });
const started = Date.now();
const jest = spawnSync(process.execPath, [require.resolve('jest/bin/jest'), '--runInBand', ...suites], {
  cwd: ROOT,
  stdio: 'inherit',
  env: { ...process.env, RELIABILITY_REPORT: '1', CHAOS_POINTS: process.env.CHAOS_POINTS ?? '50' },
});

const read = (part) => {
  const file = path.join(RESULTS, `${part}.json`);
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : undefined;
};
const crash = read('worker-crash');
const faults = read('replica-faults');
const control = read('control-fuzz');
const spec = read('spec-fuzz');
const histories = fs.readdirSync(path.join(ROOT, 'test', 'histories')).filter((f) => f.endsWith('.json')).length;

const cpu = os.cpus();
const report = {
  date: new Date().toISOString(),
  minutes: Math.round((Date.now() - started) / 6000) / 10,
  passed: jest.status === 0,
  machine: { cpus: cpu.length, model: cpu[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
  workerCrash: crash && {
    seed: crash.seed,
    pointsTried: crash.pointsTried,
    pointsLanded: crash.pointsLanded,
    rolloutsCompleted: crash.rolloutsCompleted,
    replicasLeaked: crash.replicasLeaked,
    replicasStartedTwice: crash.replicasStartedTwice,
    requests: crash.requests,
    requestsFailed: crash.requestsFailed,
    kinds: crash.kinds,
    activities: crash.activities,
    baselineSeconds: crash.baselineSeconds,
    maxExtraSeconds: crash.maxExtraSeconds,
  },
  replicaFaults: faults && {
    rolloutsCompleted: faults.rolloutsCompleted,
    replicasLeaked: faults.replicasLeaked,
    replicasStartedTwice: faults.replicasStartedTwice,
    faults: faults.faults,
    load: faults.load,
    replacements: faults.replacements,
  },
  controlInputsFuzzed: control,
  specInputsFuzzed: spec?.specInputs,
  historiesReplayed: histories,
};
fs.mkdirSync(RESULTS, { recursive: true });
fs.writeFileSync(path.join(RESULTS, 'reliability.json'), JSON.stringify(report, null, 2) + '\n');

const controlTotal = control ? control.updates + control.signals + control.cliCalls + control.temporalCliSignals : 'n/a';
const rows = [
  ['worker-crash points tried (landed inside the chosen activity)', crash ? `${crash.pointsTried} (${crash.pointsLanded})` : 'n/a'],
  ['rollouts completed as without the crash', crash ? `${crash.rolloutsCompleted}/${crash.pointsTried}` : 'n/a'],
  ['most extra time over the crash-free baseline', crash ? `${crash.maxExtraSeconds} s` : 'n/a'],
  ['replicas leaked / started twice (crash + faults)', crash && faults ? `${crash.replicasLeaked + faults.replicasLeaked} / ${crash.replicasStartedTwice + faults.replicasStartedTwice}` : 'n/a'],
  ['requests through the router during crashes / failed', crash ? `${crash.requests} / ${crash.requestsFailed}` : 'n/a'],
  ['rollouts completed under 30% provider faults', faults ? String(faults.rolloutsCompleted) : 'n/a'],
  ['control inputs fuzzed (updates, signals, CLI, temporal CLI)', control ? `${controlTotal} (${control.updates}, ${control.signals}, ${control.cliCalls}, ${control.temporalCliSignals})` : 'n/a'],
  ['spec inputs fuzzed', spec ? String(spec.specInputs) : 'n/a'],
  ['histories replayed', String(histories)],
];
console.log(`\nreliability (${report.date}, ${report.machine.cpus} cores, ${report.machine.memoryGiB} GiB, ${report.machine.model}):`);
console.log('| figure | value |\n|---|---|');
for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
console.log(`\nwritten: ${path.relative(ROOT, path.join(RESULTS, 'reliability.json'))}`);

// The README's table between its markers, so it always shows the last run.
const readmePath = path.join(ROOT, 'README.md');
const readme = fs.readFileSync(readmePath, 'utf8');
const START = '<!-- reliability:start -->';
const END = '<!-- reliability:end -->';
if (readme.includes(START) && readme.includes(END) && crash) {
  const table = [
    `Last run: ${report.date.slice(0, 10)}, seed ${crash.seed}, ${report.minutes} minutes, on ${report.machine.cpus} cores (${report.machine.model}), ${report.machine.memoryGiB} GiB, Node ${report.machine.node}, ${report.machine.platform}. Crash-free baselines (s): ${Object.entries(crash.baselineSeconds ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    '',
    '| figure | value |',
    '|---|---|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
  ].join('\n');
  const before = readme.slice(0, readme.indexOf(START) + START.length);
  const after = readme.slice(readme.indexOf(END));
  fs.writeFileSync(readmePath, `${before}\n${table}\n${after}`);
}

const slow = crash?.points?.filter((p) => p.landed && p.extraSeconds !== undefined && p.extraSeconds > EXTRA_SECONDS_ALLOWED) ?? [];
for (const p of slow) console.error(`chaos point over ${EXTRA_SECONDS_ALLOWED} s extra: ${JSON.stringify(p)}`);
process.exit(jest.status !== 0 || slow.length > 0 || !crash ? 1 : 0);
