#!/usr/bin/env node
/**
 * `npm start`: the embedded demo. Brings up `rollout dev`, deploys the example service at
 * version 1 (2 replicas), sends a request through the router, rolls it to version 2 with live
 * progress, shows the status, and leaves the stack running (Ctrl-C stops it and its replicas).
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

function rollout(cliArgs, env) {
  const r = spawnSync(process.execPath, [cli, ...cliArgs], { cwd: root, env, stdio: 'inherit' });
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

  banner('demo complete');
  process.stdout.write(
    [
      ui ? `Temporal UI:   ${ui[1]}  (workflows service-llm, rollout-llm-v1, rollout-llm-v2)` : '',
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
