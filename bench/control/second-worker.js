/**
 * A second `rollout worker` beside a `rollout dev` stack's own: the same task queue, Temporal,
 * router and state dir (so the same local provider records), with the environment the stack
 * gives its worker (src/dev/stack.ts). Not supervised: killed, it stays dead.
 */
'use strict';
const { spawn } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');
const { CLI, ROOT } = require('./stack');

/** The worker's environment: the machine's without TEMPORAL_*, plus what the stack sets. */
function workerEnv(stack, extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^TEMPORAL_/.test(k)) env[k] = v;
  return {
    ...env,
    ROLLOUT_STATE_DIR: stack.stateDir,
    ROLLOUT_GPUS: '',
    ROUTER_ADMIN_URL: stack.adminUrl,
    ROUTER_TOKEN_FILE: path.join(stack.stateDir, 'router.token'),
    ROUTER_PUBLIC_URL: stack.routerUrl,
    ROLLOUT_METRICS_PORT: '',
    ...extra,
  };
}

/**
 * Starts the worker; resolves once it logged `worker ready` to {pid, identity, child, output(),
 * exited, stop()}. `identity` is the one Temporal records for it (the SDK's `pid@hostname`).
 */
async function startSecondWorker(stack, { readyTimeoutMs = 180_000, env = {} } = {}) {
  const args = [CLI, '--disable-config-file', '--disable-config-env', '--address', stack.temporalAddress, '--namespace', 'default', 'worker'];
  const child = spawn(process.execPath, args, { cwd: ROOT, env: workerEnv(stack, env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`second worker not ready in ${readyTimeoutMs / 1000} s:\n${out}`)), readyTimeoutMs);
    const check = () => {
      if (/worker ready/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`second worker exited (${code ?? signal}) before it was ready:\n${out}`));
    });
  });
  return {
    pid: child.pid,
    identity: `${child.pid}@${os.hostname()}`,
    child,
    exited,
    output: () => out,
    /** SIGKILL to this worker's pid only (its replicas, in groups of their own, live on). */
    kill() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
      return exited;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

module.exports = { startSecondWorker, workerEnv };
