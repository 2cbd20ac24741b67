/**
 * What every bench:control part runs against, as a new user would: the real `rollout dev
 * --headless` stack (Temporal dev server, router, worker, local provider) on ports the part
 * chooses, the real CLI, and the example model server as the replica (its load time set by
 * LOAD_DELAY_SECONDS). Loopback only.
 */
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'bin', 'rollout.js');

/** The CLI's environment: the stack's Temporal only, never the machine's own profile or API key. */
function cliEnv(temporalAddress, extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^TEMPORAL_/.test(k)) env[k] = v;
  return { ...env, TEMPORAL_CONFIG_FILE: path.join(os.tmpdir(), 'rollout-bench-no-temporal-config.toml'), TEMPORAL_ADDRESS: temporalAddress, ...extra };
}

/**
 * `rollout dev --headless` on `ports` ({temporal, router, admin}; metrics optional), in a new
 * state dir; resolves once it printed `ready:`. `stop()` ends it (SIGTERM: it terminates its replicas).
 */
async function startStack({ ports, extraArgs = [], env = {}, readyTimeoutMs = 240_000 }) {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-bench-'));
  const args = [
    CLI, 'dev', '--headless',
    '--temporal-port', String(ports.temporal),
    '--router-port', String(ports.router),
    '--router-admin-port', String(ports.admin),
    '--state-dir', stateDir,
    ...(ports.metrics ? ['--metrics-port', String(ports.metrics)] : []),
    ...extraArgs,
  ];
  const dev = spawn(process.execPath, args, { cwd: ROOT, env: cliEnv(`127.0.0.1:${ports.temporal}`, env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  dev.stdout.on('data', (c) => (out += c));
  dev.stderr.on('data', (c) => (out += c));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rollout dev not ready in ${readyTimeoutMs / 1000} s:\n${out}`)), readyTimeoutMs);
    dev.stdout.on('data', () => {
      if (/^ready: /m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    dev.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`rollout dev exited ${code}:\n${out}`));
    });
  });
  const temporalAddress = `127.0.0.1:${ports.temporal}`;
  return {
    temporalAddress,
    routerUrl: `http://127.0.0.1:${ports.router}`,
    adminUrl: `http://127.0.0.1:${ports.admin}`,
    stateDir,
    dev,
    output: () => out,
    stack: () => JSON.parse(fs.readFileSync(path.join(stateDir, 'stack.json'), 'utf8')),
    cli: (cliArgs, opts) => runCli(temporalAddress, cliArgs, opts),
    async stop() {
      if (dev.exitCode === null && dev.signalCode === null) {
        const gone = new Promise((r) => dev.once('exit', r));
        dev.kill('SIGTERM');
        await gone;
      }
      fs.rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

/** The real CLI to its end: {code, stdout, stderr, seconds}; killed (and rejected) after `timeoutMs`. */
function runCli(temporalAddress, args, { timeoutMs = 600_000, env = {} } = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: cliEnv(temporalAddress, env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`rollout ${args.join(' ')} ran past ${timeoutMs / 1000} s:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
    });
  });
}

/** The benchmarks' tiny replica (native/fake-replica, built by setup): 2 MB a process, for hundreds at once. */
const FAKE_REPLICA = 'native/fake-replica/target/release/fake-replica';

/**
 * A spec for the example model server (or, with `fake: true`, the tiny fake replica, which reads
 * the same variables): `replicas`, its load time, rolling with `surge`, a probe every
 * `periodSeconds`; `version` goes into MODEL_VERSION (a new value = a new rollout).
 */
function modelServerSpec({ name, version, replicas, loadSeconds, surge = 1, unavailable = 0, periodSeconds = 1, strategy = 'rolling', timeout = '30m', rolloutYaml = [], extraEnv = {}, fake = false }) {
  const env = { MODEL_VERSION: version, LOAD_DELAY_SECONDS: String(loadSeconds), ...extraEnv };
  return [
    `name: ${name}`,
    `replicas: ${replicas}`,
    `run: ${fake ? FAKE_REPLICA : 'node examples/model-server/server.js'}`,
    'env:',
    ...Object.entries(env).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`),
    'resources:',
    '  provider: local',
    'readiness_probe:',
    '  path: /health',
    '  initial_delay_seconds: 300',
    `  period_seconds: ${periodSeconds}`,
    'rollout:',
    `  strategy: ${strategy}`,
    `  max_surge: ${surge}`,
    `  max_unavailable: ${unavailable}`,
    `  timeout: ${timeout}`,
    ...rolloutYaml.map((l) => `  ${l}`),
    '',
  ].join('\n');
}

/** Writes `yaml` to a new file in a temporary directory; returns its path. */
function writeSpec(yaml, file = 'spec.yaml') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-bench-spec-'));
  const p = path.join(dir, file);
  fs.writeFileSync(p, yaml);
  return p;
}

/** A Temporal client on the stack (for histories, describe, task latencies). Close its connection after. */
async function temporalClient(address) {
  const { Client, Connection } = require('@temporalio/client');
  const connection = await Connection.connect({ address });
  return { client: new Client({ connection }), close: () => connection.close() };
}

module.exports = { ROOT, CLI, FAKE_REPLICA, cliEnv, startStack, runCli, modelServerSpec, writeSpec, temporalClient };
