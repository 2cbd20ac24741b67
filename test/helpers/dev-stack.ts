/**
 * End-to-end harness: runs the real `rollout dev` stack (Temporal dev server, router, worker,
 * local provider) on free loopback ports, and the real CLI against it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './ports';

export const ROOT = path.resolve(__dirname, '..', '..');
export const CLI = path.join(ROOT, 'bin', 'rollout.js');

export interface RunningStack {
  temporalAddress: string;
  routerUrl: string;
  stateDir: string;
  dev: ChildProcess;
  output: () => string;
  /** Pid of the current worker process (from stack.json, updated at start). */
  workerPid(): number;
  stop(): Promise<void>;
}

/** `rollout dev --headless` on free ports (and a new state dir unless one is given). */
export async function devArgs(extraArgs: string[] = [], stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-e2e-'))) {
  const [temporalPort, routerPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const args = [
    CLI, 'dev', '--headless',
    '--temporal-port', String(temporalPort),
    '--router-port', String(routerPort),
    '--router-admin-port', String(adminPort),
    '--state-dir', stateDir,
    ...extraArgs,
  ];
  return { args, stateDir, temporalPort, routerPort, adminPort };
}

/** `rollout dev` as devArgs starts it; with `uiPort`, with its Web UI there instead of `--headless`. */
export async function startStack(extraArgs: string[] = [], opts: { stateDir?: string; env?: Record<string, string>; uiPort?: number } = {}): Promise<RunningStack> {
  const planned = await devArgs(extraArgs, opts.stateDir);
  const { stateDir, temporalPort, routerPort } = planned;
  const args = opts.uiPort === undefined ? planned.args : planned.args.flatMap((a) => (a === '--headless' ? ['--ui-port', String(opts.uiPort)] : [a]));
  const dev = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  dev.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  dev.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise<void>((resolve, reject) => {
    // Generous: on a busy 2-core machine the worker's workflow bundle alone can take half a minute.
    const timer = setTimeout(() => reject(new Error(`rollout dev not ready in 180 s:\n${out}`)), 180_000);
    const check = () => {
      if (/^ready: /m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    dev.stdout?.on('data', check);
    dev.on('exit', (code) => reject(new Error(`rollout dev exited ${code}:\n${out}`)));
  });
  const stack: RunningStack = {
    temporalAddress: `127.0.0.1:${temporalPort}`,
    routerUrl: `http://127.0.0.1:${routerPort}`,
    stateDir,
    dev,
    output: () => out,
    workerPid: () => JSON.parse(fs.readFileSync(path.join(stateDir, 'stack.json'), 'utf8')).workerPid,
    stop: async () => {
      if (dev.exitCode === null) {
        const gone = new Promise((r) => dev.once('exit', r));
        dev.kill('SIGTERM');
        await gone;
      }
    },
  };
  return stack;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * The test's environment for the CLI, without the machine's own Temporal connection settings (a
 * profile, an API key, TLS, another namespace: the CLI reads them as Temporal's tools do) and with
 * no config file (TEMPORAL_CONFIG_FILE names one that does not exist, so ~/.config/temporalio is
 * not read): the CLI talks to the stack at TEMPORAL_ADDRESS whoever runs the tests.
 */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^TEMPORAL_(ADDRESS|NAMESPACE|PROFILE|CONFIG_FILE|API_KEY|TLS|TLS_.*|GRPC_META_.*)$/.test(k)) env[k] = v;
  return { ...env, TEMPORAL_CONFIG_FILE: path.join(os.tmpdir(), 'rollout-tests-no-temporal-config.toml'), ...extra };
}

/** Runs the real CLI against the stack (asynchronously, so the test process keeps serving its own timers). */
export function rolloutCli(stack: Pick<RunningStack, 'temporalAddress'> | undefined, args: string[], timeoutMs = 240_000): Promise<CliResult> {
  return runCli(args, cliEnv(stack ? { TEMPORAL_ADDRESS: stack.temporalAddress } : {}), timeoutMs);
}

/** Runs the real CLI to its end with exactly this environment; a run past `timeoutMs` is killed and fails the test. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rollout ${args.join(' ')} timed out:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** Writes a spec file for the example model server with the given overrides of env and fields. */
export function writeSpec(dir: string, file: string, yaml: string): string {
  const p = path.join(dir, file);
  fs.writeFileSync(p, yaml);
  return p;
}

export function modelServerSpec(opts: {
  name: string;
  version: string;
  replicas?: number;
  extraEnv?: Record<string, string>;
  initialDelay?: number;
  timeout?: string;
  strategy?: string;
  accelerators?: string;
  maxUnavailable?: number;
  /** Extra lines of the `rollout:` section (steps, analysis…), written as given, indented under it. */
  rolloutYaml?: string[];
}): string {
  const env = { MODEL_VERSION: opts.version, LOAD_DELAY_SECONDS: '1', ...opts.extraEnv };
  return [
    `name: ${opts.name}`,
    `replicas: ${opts.replicas ?? 2}`,
    'run: node examples/model-server/server.js',
    'env:',
    ...Object.entries(env).map(([k, v]) => `  ${k}: "${v}"`),
    ...(opts.accelerators ? ['resources:', `  accelerators: "${opts.accelerators}"`] : []),
    'readiness_probe:',
    '  path: /health',
    `  initial_delay_seconds: ${opts.initialDelay ?? 30}`,
    '  period_seconds: 1',
    'rollout:',
    `  strategy: ${opts.strategy ?? 'rolling'}`,
    '  max_surge: 1',
    `  max_unavailable: ${opts.maxUnavailable ?? 0}`,
    `  timeout: ${opts.timeout ?? '5m'}`,
    ...(opts.rolloutYaml ?? []).map((line) => `  ${line}`),
    '',
  ].join('\n');
}

/** Pids of live processes whose environment carries REPLICA_ID for this service (any version). */
export function replicaProcesses(service: string): { pid: number; replicaId: string }[] {
  const found: { pid: number; replicaId: string }[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = fs.readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue; // zombies are dead
      const svc = environ.find((e) => e.startsWith('SERVICE_NAME='))?.slice('SERVICE_NAME='.length);
      const id = environ.find((e) => e.startsWith('REPLICA_ID='))?.slice('REPLICA_ID='.length);
      if (svc === service && id) found.push({ pid: Number(entry), replicaId: id });
    } catch {
      // process gone or not ours
    }
  }
  return found;
}

export function killProcess(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  spawnSync('kill', [`-${signal.replace('SIG', '')}`, String(pid)]);
}
