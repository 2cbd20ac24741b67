/**
 * `rollout plan`: the real CLI against an unreachable Temporal (it plans offline from a previous
 * version), and the plan it builds from a running service's status (planView, pure).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { planView, renderPlan, type PlanView } from '../../src/cli/commands/plan';
import { parseSpec } from '../../src/spec/load';
import type { ServiceSpec } from '../../src/spec/types';
import type { ReplicaRecord, ServiceStatus } from '../../src/workflows/types';

const root = path.resolve(__dirname, '../..');

function spec(yaml: string): ServiceSpec {
  const r = parseSpec(`name: llm\nrun: serve --port $PORT\n${yaml}`);
  if (!r.ok) throw new Error(`bad test spec: ${JSON.stringify(r.issues)}`);
  return r.spec;
}

const row = (s: PlanView['stages'][number]): string => `C${s.canaryReplicas} ${s.canaryPercent}% · P${s.primaryReplicas} ${s.primaryPercent}%`;

describe('rollout plan (the CLI, Temporal unreachable)', () => {
  let dir: string;
  // A closed port: the plan is made offline, from `replicas` READY replicas of a previous version.
  const env = { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1' };
  const rollout = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/rollout.js'), 'plan', ...args], { cwd: root, env, encoding: 'utf8', timeout: 60_000 });

  beforeAll(() => {
    execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-plan-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a valid spec: JSON stages from a previous version, exit 0, one line on stderr saying why', () => {
    const file = path.join(dir, 'canary.yaml');
    fs.writeFileSync(file, 'name: llm\nreplicas: 4\nrun: serve --port $PORT\nrollout:\n  strategy: canary\n  steps: [{weight: 10}, {pause: 10m}, {weight: 50}, {pause: {}}, {weight: 100}]\n');
    const r = rollout(file, '-o', 'json');
    expect(r.status).toBe(0);
    expect(r.stderr.trim().split('\n')).toEqual(['Temporal at 127.0.0.1:1 is unreachable: planning from 4 READY replica(s) of a previous version']);
    const view = JSON.parse(r.stdout) as PlanView;
    expect(view).toMatchObject({ service: 'llm', mode: 'rollout', fromVersion: 1, toVersion: 2 });
    expect(view.stages.map((s) => `${row(s)} ${s.note.split(':')[0]}`)).toEqual([
      'C1 0% · P4 100% moving to v2 10%',
      'C1 10% · P4 90% weight 10% reached',
      'C1 10% · P4 90% pause 10m',
      'C1 25% · P3 75% moving to v2 50%',
      'C2 25% · P3 75% moving to v2 50%',
      'C2 50% · P2 50% weight 50% reached',
      'C2 50% · P2 50% pause until resumed',
      'C3 50% · P2 50% moving to v2 100%',
      'C3 75% · P1 25% moving to v2 100%',
      'C4 75% · P1 25% moving to v2 100%',
      'C4 100% · P0 0% done',
    ]);
  });

  test('text output: a table with a header row', () => {
    const file = path.join(dir, 'rolling.yaml');
    fs.writeFileSync(file, 'name: llm\nreplicas: 2\nrun: serve --port $PORT\n');
    const r = rollout(file);
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('service   llm: v1 → v2 (a previous version → the new one)');
    expect(lines).toContain('STAGE  CANARY REPLICAS  CANARY %  PRIMARY REPLICAS  PRIMARY %  NOTE');
    expect(lines.filter((l) => /^\d+ /.test(l))).toHaveLength(4);
    expect(r.stdout).toMatch(/^4 +2 +100% +0 +0% +done: 2 v2 replica\(s\) ready$/m);
  });

  test('the estimate under the table and in JSON: a local spec (no dollars), from initial_delay_seconds offline', () => {
    const file = path.join(dir, 'estimate-local.yaml');
    // 2 replicas, surge 1, 60 s to load: two launches of one replica, 3 alive during each.
    fs.writeFileSync(file, 'name: llm\nreplicas: 2\nrun: serve --port $PORT\nresources: {accelerators: L4:1}\nreadiness_probe: {initial_delay_seconds: 60}\n');
    const text = rollout(file);
    expect(text.status).toBe(0);
    expect(text.stdout).toContain(
      [
        'estimate  ~2 min; +0.0333 replica-hours, +0.0333 GPU-hours above the steady state (2 replica(s))',
        '          load time 60 s per launch: initial_delay_seconds (no running service read), the longest a replica may take to become READY',
        '',
      ].join('\n'),
    );
    expect(text.stdout).not.toMatch(/\$/);
    const json = JSON.parse(rollout(file, '-o', 'json').stdout) as PlanView;
    expect(json.estimate).toEqual({
      durationSeconds: 120,
      extraReplicaHours: 0.0333,
      extraGpuHours: 0.0333,
      gpusPerReplica: 1,
      loadSeconds: 60,
      loadTimeSource: 'initial_delay_seconds',
      indefinitePauses: 0,
      extraReplicasWhileHeld: 0,
      lowerBound: false,
    });
    expect(json.stages.filter((s) => s.launched).map((s) => s.launched)).toEqual([1, 1]);
  });

  test('aws, accelerators A10G:1: priced at the catalog’s first type (g5.xlarge); a pause until resumed makes it a lower bound', () => {
    const file = path.join(dir, 'estimate-g5.yaml');
    // 4 replicas, canary [25, pause 10m, 50, pause {}, 100], 600 s to load: 4 launches of one
    // replica (5 alive) and a 10-minute pause at 4 alive → 50 min, 1 replica × 40 min extra.
    fs.writeFileSync(
      file,
      'name: llm\nreplicas: 4\nrun: serve --port $PORT\nresources: {provider: aws, accelerators: A10G:1}\nreadiness_probe: {initial_delay_seconds: 600}\nrollout: {strategy: canary, steps: [{weight: 25}, {pause: 10m}, {weight: 50}, {pause: {}}, {weight: 100}]}\n',
    );
    const text = rollout(file);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^estimate {2}~50 min or more; \+0\.6667 replica-hours, \+0\.6667 GPU-hours above the steady state \(4 replica\(s\)\)$/m);
    expect(text.stdout).toMatch(/^ {10}~\$0\.67 at g5\.xlarge, on-demand \$1\.006\/h \(us-east-1, catalog prices of \d{4}-\d{2}\)$/m);
    expect(text.stdout).toMatch(/^ {10}a lower bound: 1 pause\(s\) until resumed not counted/m);
    const { estimate } = JSON.parse(rollout(file, '-o', 'json').stdout) as PlanView;
    expect(estimate).toMatchObject({
      durationSeconds: 3000,
      extraReplicaHours: 0.6667,
      extraGpuHours: 0.6667,
      extraCostUsd: 0.67,
      loadSeconds: 600,
      loadTimeSource: 'initial_delay_seconds',
      indefinitePauses: 1,
      lowerBound: true,
      price: { instanceType: 'g5.xlarge', onDemandUsdPerHour: 1.006, region: 'us-east-1', spot: false },
    });
  });

  test('aws, accelerators H100:8 (p5.48xlarge, price unknown): GPU-hours, no dollar figure, and the text says why', () => {
    const file = path.join(dir, 'estimate-p5.yaml');
    fs.writeFileSync(file, 'name: llm\nreplicas: 2\nrun: serve --port $PORT\nresources: {provider: aws, accelerators: "H100:8", spot: true}\nreadiness_probe: {initial_delay_seconds: 900}\n');
    const text = rollout(file);
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^estimate {2}~30 min; \+0\.5 replica-hours, \+4 GPU-hours above the steady state/m);
    expect(text.stdout).toMatch(/^ {10}no dollar figure: the catalog has no price it is sure of for p5\.48xlarge$/m);
    const { estimate } = JSON.parse(rollout(file, '-o', 'json').stdout) as PlanView;
    expect(estimate).toMatchObject({ durationSeconds: 1800, extraReplicaHours: 0.5, extraGpuHours: 4, gpusPerReplica: 8, price: { instanceType: 'p5.48xlarge', onDemandUsdPerHour: null, spot: true } });
    expect(estimate).not.toHaveProperty('extraCostUsd');
  });

  test('an invalid spec: exit 2, the field path on stderr, with -o json the same error as JSON on stdout (no plan)', () => {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'name: llm\nrun: x\nrollout: {strategy: canary, steps: [{weight: 150}]}\n');
    const r = rollout(file, '-o', 'json');
    expect(r.status).toBe(2);
    expect(JSON.parse(r.stdout)).toEqual({ error: { message: expect.stringContaining('rollout.steps.0.weight: expected a whole percent from 1 to 100, got 150'), exitCode: 2 } });
    expect(rollout(file).stdout).toBe('');
    expect(r.stderr).toMatch(/^error: invalid spec .*bad\.yaml:\n {2}rollout\.steps\.0\.weight: expected a whole percent from 1 to 100, got 150/);
  });
});

describe('planView (from a running service)', () => {
  const serving = spec('replicas: 2\nenv: {MODEL: a}\n');
  const replicas = (...codes: [string, number, ReplicaRecord['status']][]): ReplicaRecord[] => codes.map(([id, version, status]) => ({ id, version, status, gpus: 0 }));
  const status = (over: Partial<ServiceStatus> = {}): ServiceStatus => ({
    name: 'llm',
    version: 3,
    nextVersion: 4,
    spec: serving,
    replicas: replicas(['r1', 3, 'READY'], ['r2', 3, 'READY']),
    traffic: { '3': 100 },
    ...over,
  });

  test('a new model: a rollout from the serving version to the next', () => {
    const view = planView(spec('replicas: 2\nenv: {MODEL: b}\n'), status(), false);
    expect(view).toMatchObject({ mode: 'rollout', reason: 'env.MODEL changed: new replicas needed', fromVersion: 3, toVersion: 4 });
    expect(view.stages.map(row)).toEqual(['C1 0% · P2 100%', 'C1 50% · P1 50%', 'C2 50% · P1 50%', 'C2 100% · P0 0%']);
  });

  test('only replicas changed: in place, one stage', () => {
    const view = planView(spec('replicas: 3\nenv: {MODEL: a}\n'), status(), false);
    expect(view).toMatchObject({ mode: 'in_place', fromVersion: 3, toVersion: 4 });
    expect(view.stages).toEqual([{ canaryReplicas: 0, canaryPercent: 0, primaryReplicas: 3, primaryPercent: 100, note: 'v3 scaled from 2 to 3 replica(s) in place, nothing restarted', launched: 1 }]);
    // The one new replica loads (initial_delay_seconds: nothing measured); the fleet never exceeds 3.
    expect(view.estimate).toMatchObject({ durationSeconds: 1200, extraReplicaHours: 0, loadTimeSource: 'initial_delay_seconds' });
  });

  test('only the rollout section changed: in place, no stages', () => {
    const view = planView(spec('replicas: 2\nenv: {MODEL: a}\nrollout: {timeout: 1h}\n'), status(), false);
    expect(view).toMatchObject({ mode: 'in_place', stages: [] });
    expect(renderPlan(view, serving)).toMatch(/no replica is launched or removed/);
  });

  test('nothing changed: unchanged, no stages; with --force a full rollout', () => {
    const same = spec('replicas: 2\nenv: {MODEL: a}\n');
    const unchanged = planView(same, status(), false);
    expect(unchanged).toMatchObject({ mode: 'unchanged', fromVersion: 3, toVersion: 3, stages: [] });
    expect(renderPlan(unchanged, same)).toMatch(/^service {3}llm: v3\nmode {6}unchanged: .*\n\nnothing to do\n$/);
    const forced = planView(same, status(), true);
    expect(forced).toMatchObject({ mode: 'rollout', toVersion: 4 });
    expect(row(forced.stages[forced.stages.length - 1])).toBe('C2 100% · P0 0%');
  });

  test('the load time: the slowest measured load of the serving version’s replicas, else initial_delay_seconds', () => {
    const measured = status({
      replicas: [
        { id: 'r1', version: 3, status: 'READY', gpus: 0, loadSeconds: 42.5 },
        { id: 'r2', version: 3, status: 'READY', gpus: 0, loadSeconds: 61 },
        { id: 'r0', version: 2, status: 'SHUTTING_DOWN', gpus: 0, loadSeconds: 900 },
      ],
    });
    const next = spec('replicas: 2\nenv: {MODEL: b}\nreadiness_probe: {initial_delay_seconds: 300}\n');
    const view = planView(next, measured, false);
    // Rolling 2, surge 1: two launches of 61 s each with 3 alive.
    expect(view.estimate).toMatchObject({ durationSeconds: 122, loadSeconds: 61, loadTimeSource: 'measured', measuredReplica: 'r2', extraReplicaHours: 0.0339 });
    expect(renderPlan(view, next)).toMatch(/^ {10}load time 61 s per launch: measured \(the slowest v3 replica to become READY: r2\)$/m);
    const unmeasured = planView(next, status(), false);
    expect(unmeasured.estimate).toMatchObject({ durationSeconds: 600, loadSeconds: 300, loadTimeSource: 'initial_delay_seconds' });
    expect(unmeasured.estimate).not.toHaveProperty('measuredReplica');
    expect(renderPlan(unmeasured, next)).toMatch(/load time 300 s per launch: initial_delay_seconds \(not measured yet on v3\)/);
  });

  test('nothing to do: an estimate of nothing in JSON, no estimate lines in the text', () => {
    const same = spec('replicas: 2\nenv: {MODEL: a}\n');
    const view = planView(same, status(), false);
    expect(view.estimate).toMatchObject({ durationSeconds: 0, extraReplicaHours: 0, lowerBound: false });
    expect(renderPlan(view, same)).not.toMatch(/estimate/);
  });

  test.each<[string, string, Record<string, unknown>, RegExp]>([
    ['a launch template: no instance type to price', 'launch_template: {name: llm-gpu}', { instanceType: null, onDemandUsdPerHour: null }, /no dollar figure: the instance type comes from the launch template/],
    ['an instance type the catalog lacks', 'instance_type: p3.2xlarge', { instanceType: 'p3.2xlarge', onDemandUsdPerHour: null }, /no dollar figure: p3\.2xlarge is not in the catalog/],
    ['spot: the on-demand price, said to be an upper bound', 'instance_type: g5.12xlarge, spot: true', { instanceType: 'g5.12xlarge', onDemandUsdPerHour: 5.672, spot: true }, /~\$0\.38 at g5\.12xlarge, on-demand \$5\.672\/h .*; spot: an upper bound/],
  ])('aws pricing, %s', (_name, resources, price, line) => {
    const next = spec(`replicas: 2\nenv: {MODEL: b}\nresources: {provider: aws, ${resources}}\nreadiness_probe: {initial_delay_seconds: 120}\n`);
    const view = planView(next, status(), false);
    // Rolling 2, surge 1: 2 × 120 s with one replica extra = 0.0667 replica-hours.
    expect(view.estimate).toMatchObject({ durationSeconds: 240, extraReplicaHours: 0.0667, price });
    expect(renderPlan(view, next)).toMatch(line);
  });

  test('a service that never served: a first deploy', () => {
    const view = planView(serving, status({ version: 0, nextVersion: 1, spec: undefined, replicas: [], traffic: {} }), false);
    expect(view).toMatchObject({ mode: 'rollout', reason: 'first deploy', fromVersion: 0, toVersion: 1 });
    // All replicas at once, none above the steady state: one load, no extras.
    expect(view.estimate).toMatchObject({ durationSeconds: 1200, extraReplicaHours: 0 });
    expect(renderPlan(view, serving)).toMatch(/initial_delay_seconds \(a first deploy: nothing measured yet\)/);
    expect(view.stages.map((s) => [s.canaryReplicas, s.primaryReplicas])).toEqual([
      [2, 0],
      [2, 0],
    ]);
    expect(row(view.stages[1])).toBe('C2 100% · P0 0%');
  });

  test('only the serving version’s live replicas count; loading ones are taken as READY, failed and other versions left out', () => {
    const view = planView(
      spec('replicas: 3\nenv: {MODEL: b}\nrollout: {strategy: canary, steps: [{weight: 50}]}\n'),
      status({ replicas: replicas(['r1', 3, 'READY'], ['r2', 3, 'STARTING'], ['r3', 3, 'FAILED'], ['r4', 4, 'READY'], ['r5', 3, 'SHUTTING_DOWN']), activeRollout: { workflowId: 'rollout-llm-v4', version: 4 } }),
      false,
    );
    expect(view).toMatchObject({ mode: 'rollout', fromVersion: 3, toVersion: 4 });
    expect(row(view.stages[0])).toBe('C2 0% · P2 100%');
    expect(row(view.stages[view.stages.length - 1])).toBe('C3 100% · P0 0%');
  });
});
