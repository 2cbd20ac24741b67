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
    expect(view.stages).toEqual([{ canaryReplicas: 0, canaryPercent: 0, primaryReplicas: 3, primaryPercent: 100, note: 'v3 scaled from 2 to 3 replica(s) in place, nothing restarted' }]);
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

  test('a service that never served: a first deploy', () => {
    const view = planView(serving, status({ version: 0, nextVersion: 1, spec: undefined, replicas: [], traffic: {} }), false);
    expect(view).toMatchObject({ mode: 'rollout', reason: 'first deploy', fromVersion: 0, toVersion: 1 });
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
