/**
 * A worker started against a namespace that lacks the rollout search attributes: the real
 * `rollout worker` process (dist/), a real dev server started without them, the real router and
 * replicas, the real CLI. The worker says which are missing and the command that creates them,
 * and runs: a rollout completes, untagged. Then the printed command, run as printed with the
 * project's `temporal` CLI, creates them, and the next rollout is tagged and found by a
 * visibility query (the worker was not restarted: the service asks before each rollout).
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { LocalProvider } from '../../src/providers/local';
import { startRouter, type RunningRouter } from '../../src/router/server';
import { resolveBinary, TEMPORAL_CLI } from '../../src/temporal/binaries';
import { ROLLOUT_SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
import { CLI, cliEnv, modelServerSpec, ROOT, rolloutCli, writeSpec } from '../helpers/dev-stack';
import { freePort } from '../helpers/ports';
import { createLocalEnv } from '../helpers/temporal-env';
import { waitUntil } from '../helpers/wait';

let env: TestWorkflowEnvironment;
let router: RunningRouter;
let worker: ChildProcess;
let stateDir: string;
let workerOut = '';
let workerErr = '';

beforeAll(async () => {
  const built = path.join(ROOT, 'dist', 'worker.js');
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` (npm test's set-up does)`);
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-sa-missing-'));
  const token = crypto.randomBytes(16).toString('hex');
  const tokenFile = path.join(stateDir, 'router-token');
  fs.writeFileSync(tokenFile, token, { mode: 0o600 });
  env = await createLocalEnv();
  router = await startRouter({ trafficPort: await freePort(), adminPort: await freePort(), token, closeGraceMs: 1000 });
  worker = spawn(process.execPath, [CLI, '--disable-config-file', '--disable-config-env', '--address', env.address, 'worker'], {
    cwd: ROOT,
    env: cliEnv({ ROLLOUT_STATE_DIR: stateDir, ROLLOUT_GPUS: '0', ROUTER_ADMIN_URL: router.adminUrl, ROUTER_PUBLIC_URL: router.trafficUrl, ROUTER_TOKEN_FILE: tokenFile }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  worker.stdout?.on('data', (c: Buffer) => (workerOut += c.toString()));
  worker.stderr?.on('data', (c: Buffer) => (workerErr += c.toString()));
  await waitUntil(() => /worker ready/.test(workerOut) || worker.exitCode !== null, 'the worker to be ready', 180_000, 200);
  if (worker.exitCode !== null) throw new Error(`the worker exited ${worker.exitCode}:\n${workerOut}\n${workerErr}`);
}, 300_000);

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const gone = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGTERM');
    await gone;
  }
  // The replicas this test's worker started (detached process groups): terminated by their records.
  if (stateDir) {
    const provider = new LocalProvider({ stateDir: path.join(stateDir, 'local'), gpus: 0, logger: pino({ level: 'warn' }) });
    await Promise.all((await provider.list()).map((r) => provider.terminate(r.replicaId)));
  }
  await router?.close();
  await env?.teardown();
}, 120_000);

const attributesOf = async (workflowId: string): Promise<Record<string, unknown>> => {
  const { typedSearchAttributes } = await env.client.workflow.getHandle(workflowId).describe();
  return Object.fromEntries(ROLLOUT_SEARCH_ATTRIBUTES.flatMap((key) => (typedSearchAttributes.get(key) === undefined ? [] : [[key.name, typedSearchAttributes.get(key)]])));
};

async function listIds(query: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const w of env.client.workflow.list({ query })) ids.push(w.workflowId);
  return ids.sort();
}

test('the worker names the missing attributes and the command; rollouts run untagged; after the command, the next rollout is tagged and found', async () => {
  const names = ROLLOUT_SEARCH_ATTRIBUTES.map((k) => k.name);
  expect(workerErr).toContain(`namespace default lacks the search attribute(s) ${names.join(', ')}`);
  const command = /(temporal operator search-attribute create .*)$/m.exec(workerErr)?.[1];
  expect(command).toBe(
    `temporal operator search-attribute create --address ${env.address} --namespace default --name RolloutService --type Keyword --name RolloutVersion --type Int --name RolloutPhase --type Keyword` +
      ' --name RolloutStrategy --type Keyword --name RolloutCanaryPercent --type Int --name RolloutOutcome --type Keyword',
  );

  const specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-sa-specs-'));
  const v1 = writeSpec(specDir, 'v1.yaml', modelServerSpec({ name: 'sa-late', version: 'v1', replicas: 1 }));
  const r1 = await rolloutCli({ temporalAddress: env.address }, ['deploy', v1, '--wait']);
  expect({ code: r1.code, stderr: r1.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  expect(await attributesOf('rollout-sa-late-v1')).toEqual({});

  // The command exactly as printed (it names this server), run with the project's temporal CLI against this server.
  const temporal = resolveBinary(TEMPORAL_CLI);
  if (!temporal) throw new Error('no temporal CLI (scripts/setup.js installs it into .venv)');
  const run = spawnSync(temporal, command!.split(' ').slice(1), { encoding: 'utf8', env: cliEnv() });
  expect({ code: run.status, stderr: run.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  const { customAttributes } = await env.connection.operatorService.listSearchAttributes({ namespace: 'default' });
  expect(Object.keys(customAttributes ?? {}).filter((n) => names.includes(n)).sort()).toEqual([...names].sort());

  const v2 = writeSpec(specDir, 'v2.yaml', modelServerSpec({ name: 'sa-late', version: 'v2', replicas: 1 }));
  const r2 = await rolloutCli({ temporalAddress: env.address }, ['deploy', v2, '--wait']);
  expect(r2.code).toBe(0);
  expect(await attributesOf('rollout-sa-late-v2')).toEqual({
    RolloutService: 'sa-late',
    RolloutVersion: 2,
    RolloutStrategy: 'rolling',
    RolloutPhase: 'succeeded',
    RolloutCanaryPercent: 100,
    RolloutOutcome: 'succeeded',
  });
  // Visibility is eventually consistent: wait for the record.
  let found: string[] = [];
  await waitUntil(async () => (found = await listIds('RolloutService="sa-late" AND RolloutOutcome="succeeded"')).length === 1, 'the tagged rollout in visibility', 60_000, 500);
  expect(found).toEqual(['rollout-sa-late-v2']);
  await waitUntil(async () => (found = await listIds('RolloutService="sa-late"')).length === 2, 'the service and its tagged rollout in visibility', 60_000, 500);
  expect(found).toEqual(['rollout-sa-late-v2', 'service-sa-late']);
}, 400_000);
