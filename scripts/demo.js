#!/usr/bin/env node
/**
 * `npm start`: the embedded demo. Brings up `rollout dev`, deploys the example service at
 * version 1 (2 replicas), sends a request through the router, rolls it to version 2 with live
 * progress, previews and runs a canary of version 3 (50% with analysis, held until promoted),
 * shows the status, and leaves the stack running (Ctrl-C stops it and its replicas).
 * Extra arguments go to `rollout dev` (e.g. `npm start -- --router-port 9080`).
 * `--exit` stops the stack after the demo instead of leaving it running.
 */
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'bin', 'rollout.js');
const args = process.argv.slice(2);
const exitAfter = args.includes('--exit');
const devArgs = ['dev', '--state-dir', path.join(root, '.rollout', 'demo'), ...args.filter((a) => a !== '--exit')];

function banner(text) {
  process.stdout.write(`\n=== ${text}\n`);
}

// The demo's commands go to its own stack, whatever Temporal profile or API key the user has set
// (set once the stack is ready): no config file, no TEMPORAL_* variable, the stack's address.
let connectionArgs = [];

function rollout(cliArgs, env) {
  const r = spawnSync(process.execPath, [cli, ...connectionArgs, ...cliArgs], { cwd: root, env, stdio: 'inherit' });
  return r.status;
}

async function completion(url) {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'demo-llm', prompt: 'Say hello', max_tokens: 8 }),
  });
  const body = await res.json();
  return `HTTP ${res.status} from ${res.headers.get('x-rollout-replica')} (model ${body.model_version}): ${JSON.stringify(body.choices?.[0]?.text)}`;
}

/** Polls `rollout status llm -o json` until `done(status)`; prints what it waits for. */
async function waitForStatus(env, done, what) {
  process.stdout.write(`waiting for ${what}…\n`);
  for (let i = 0; i < 600; i++) {
    const r = spawnSync(process.execPath, [cli, ...connectionArgs, 'status', 'llm', '-o', 'json'], { cwd: root, env, encoding: 'utf8' });
    if (r.status === 0) {
      const status = JSON.parse(r.stdout);
      if (done(status)) return status;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** Runs `fn` while ~10 requests/s go through the router, so the canary's analysis has traffic to judge. */
async function withTraffic(url, fn) {
  let running = true;
  const load = (async () => {
    while (running) {
      await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt":"load"}' })
        .then((res) => res.arrayBuffer())
        .catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    return await fn();
  } finally {
    running = false;
    await load;
  }
}

async function main() {
  banner(`starting the embedded stack: rollout ${devArgs.join(' ')}`);
  const dev = spawn(process.execPath, [cli, ...devArgs], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await new Promise((resolve, reject) => {
    let buffered = '';
    dev.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      buffered += chunk.toString();
      const m = buffered.match(/^ready: (.*)$/m);
      if (m) resolve(m[1]);
    });
    dev.on('exit', (code) => reject(new Error(`rollout dev exited with ${code} before it was ready`)));
  });
  const temporal = ready.match(/temporal (\S+)/)[1];
  const routerUrl = ready.match(/router (\S+)/)[1];
  const ui = ready.match(/ui (\S+)/);
  const env = { ...process.env, TEMPORAL_ADDRESS: temporal };
  connectionArgs = ['--disable-config-file', '--disable-config-env', '--address', temporal];
  const stop = () => new Promise((resolve) => { dev.once('exit', resolve); dev.kill('SIGTERM'); });
  process.on('SIGINT', () => void stop().then(() => process.exit(0)));
  process.on('SIGTERM', () => void stop().then(() => process.exit(0)));

  banner('deploying llm v1 (2 replicas): rollout deploy examples/llm-service.yaml --wait');
  if (rollout(['deploy', 'examples/llm-service.yaml', '--wait'], env) !== 0) throw new Error('v1 deploy failed');
  banner('a request through the router');
  process.stdout.write(`${await completion(`${routerUrl}/llm`)}\n`);

  banner('rolling llm to v2: rollout deploy examples/llm-service-v2.yaml --wait');
  if (rollout(['deploy', 'examples/llm-service-v2.yaml', '--wait'], env) !== 0) throw new Error('v2 rollout failed');
  banner('rollout status llm');
  rollout(['status', 'llm'], env);
  process.stdout.write(`${await completion(`${routerUrl}/llm`)}\n`);

  banner('previewing a canary of v3: rollout plan examples/llm-service-canary.yaml');
  rollout(['plan', 'examples/llm-service-canary.yaml'], env);
  banner('canary v3 (50%, analysis every 5 s, then hold): rollout deploy examples/llm-service-canary.yaml');
  if (rollout(['deploy', 'examples/llm-service-canary.yaml'], env) !== 0) throw new Error('v3 deploy failed');
  const held = await withTraffic(`${routerUrl}/llm`, () => waitForStatus(env, (s) => s.rollout?.stepIndex === 2, 'the canary to hold at its pause'));
  process.stdout.write(`v3 holds at ${held.rollout.canaryPercent}% · analysis ${held.rollout.analysis?.passed ?? 0} passed, ${held.rollout.analysis?.failed ?? 0} failed\n`);
  const split = {};
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`${routerUrl}/llm/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt":"split"}' });
    await res.arrayBuffer();
    const v = `v${res.headers.get('x-rollout-version')}`;
    split[v] = (split[v] ?? 0) + 1;
  }
  process.stdout.write(`20 requests through the router: ${Object.entries(split).map(([v, n]) => `${v} ${n}`).join(', ')}\n`);
  banner('rollout promote llm');
  if (rollout(['promote', 'llm'], env) !== 0) throw new Error('promote failed');
  await waitForStatus(env, (s) => s.version === 3 && !s.rollout, 'v3 to serve all traffic');
  banner('rollout status llm');
  rollout(['status', 'llm'], env);

  banner('demo complete');
  process.stdout.write(
    [
      ui ? `Temporal UI:   ${ui[1]}  (workflows service-llm, rollout-llm-v1, -v2, -v3)` : '',
      `service:       ${routerUrl}/llm/v1/completions`,
      `try:           TEMPORAL_ADDRESS=${temporal} npx rollout status llm`,
      exitAfter ? 'stopping (--exit)' : 'the stack keeps running; Ctrl-C stops it and its replicas',
    ].filter(Boolean).join('\n') + '\n',
  );
  if (exitAfter) {
    await stop();
    process.exit(0);
  }
}

main().catch((err) => {
  process.stderr.write(`demo failed: ${err.message}\n`);
  process.exitCode = 1;
  spawnSync('pkill', ['-TERM', '-P', String(process.pid)]);
});
