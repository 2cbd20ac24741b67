#!/usr/bin/env node
/**
 * `npm run bench:router`: the router against the same replica reached directly and through
 * nginx (Debian's package, configured the same way: one worker process, keep-alive upstream,
 * no buffering), side by side in one run. Load from autocannon in this process; the replica,
 * the router and nginx each run as their own process.
 *
 * Scenarios: latency at a fixed 1,000 requests/s and of streaming (SSE) requests at a fixed
 * rate (bench/fixed-rate.js, sub-millisecond); maximum throughput of plain requests (autocannon). Results: bench/results/router-<time>.json and .md,
 * and the README's table between the bench:router markers.
 */
'use strict';
const autocannon = require('autocannon');
const { fixedRate } = require('./fixed-rate');
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const children = [];

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitHttp(url, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function start(command, args, env = {}) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(child);
  return child;
}

function ensureNginx() {
  const found = spawnSync('sh', ['-c', 'command -v nginx || ls /usr/sbin/nginx'], { encoding: 'utf8' }).stdout.trim().split('\n')[0];
  if (found) return found;
  process.stderr.write('[bench] installing nginx (Debian nginx-light)…\n');
  const r = spawnSync('sh', ['-c', 'apt-get install -y nginx-light || (apt-get update && apt-get install -y nginx-light)'], { stdio: 'inherit' });
  if (r.status !== 0) return undefined;
  return '/usr/sbin/nginx';
}

function nginxConfig(dir, listenPort, upstreamPort) {
  return `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream replica { server 127.0.0.1:${upstreamPort}; keepalive 256; }
  server {
    listen 127.0.0.1:${listenPort};
    location /llm/ {
      proxy_pass http://replica/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`;
}

function run(opts) {
  return new Promise((resolve, reject) => {
    autocannon({ duration: seconds, ...opts }, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

const plainBody = JSON.stringify({ prompt: 'benchmark', max_tokens: 8 });
const streamBody = JSON.stringify({ messages: [{ role: 'user', content: 'benchmark' }], stream: true, max_tokens: 8 });

async function scenario(name, base, opts) {
  let row;
  if (opts.rate) {
    // Fixed rate: our open-loop client, with sub-millisecond latencies.
    row = { scenario: name, target: opts.target, ...(await fixedRate({ url: `${base}${opts.path}`, body: opts.body, rate: opts.rate, seconds, connections: opts.connections })) };
  } else {
    const result = await run({ url: `${base}${opts.path}`, method: 'POST', headers: { 'content-type': 'application/json' }, body: opts.body, connections: opts.connections });
    row = {
      scenario: name,
      target: opts.target,
      requestsPerSecond: Math.round(result.requests.average),
      p50ms: result.latency.p50,
      p99ms: result.latency.p99,
      errors: result.errors + result.non2xx + result.timeouts,
    };
  }
  process.stderr.write(`[bench] ${name.padEnd(22)} ${opts.target.padEnd(7)} ${String(row.requestsPerSecond).padStart(6)} req/s  p50 ${row.p50ms} ms  p99 ${row.p99ms} ms  errors ${row.errors}\n`);
  return row;
}

function describeMachine() {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

function ratio(a, b) {
  return b ? Math.round((a / b) * 100) / 100 : null;
}

async function main() {
  const routerMain = path.join(root, 'dist', 'router', 'main.js');
  if (!fs.existsSync(routerMain)) execFileSync(process.execPath, [path.join(root, 'scripts', 'setup.js')], { stdio: 'inherit' });

  const replicaPort = await freePort();
  start(process.execPath, [path.join(root, 'examples', 'model-server', 'server.js')], { PORT: String(replicaPort), TOKEN_DELAY_MS: '0', MODEL_VERSION: 'bench' });
  const direct = `http://127.0.0.1:${replicaPort}`;
  await waitHttp(`${direct}/health`);

  const [trafficPort, adminPort] = [await freePort(), await freePort()];
  const token = 'bench-token';
  start(process.execPath, [...(process.env.ROUTER_NODE_FLAGS ?? '').split(' ').filter(Boolean), path.join(root, 'bin', 'rollout.js'), 'router'], { ROUTER_TRAFFIC_PORT: String(trafficPort), ROUTER_ADMIN_PORT: String(adminPort), ROUTER_TOKEN: token });
  await waitHttp(`http://127.0.0.1:${adminPort}/healthz`);
  const put = await fetch(`http://127.0.0.1:${adminPort}/v1/services/llm/backends`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ backends: [{ replicaId: 'bench-r1', version: 1, url: direct, weight: 1 }] }),
  });
  if (put.status !== 200) throw new Error(`router refused the route: ${put.status}`);
  const router = `http://127.0.0.1:${trafficPort}/llm`;

  const targets = { direct, router };
  const nginxBin = ensureNginx();
  if (nginxBin) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-nginx-'));
    const nginxPort = await freePort();
    fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxConfig(dir, nginxPort, replicaPort));
    start(nginxBin, ['-c', path.join(dir, 'nginx.conf'), '-p', dir]);
    targets.nginx = `http://127.0.0.1:${nginxPort}/llm`;
    await waitHttp(`${targets.nginx}/health`);
  } else process.stderr.write('[bench] nginx unavailable: its column is left out\n');

  // Warm up every path (JIT, keep-alive pools).
  for (const [target, base] of Object.entries(targets)) await scenario('warm-up', base, { target, path: '/v1/completions', body: plainBody, connections: 8 });

  // Fixed-rate latency runs first, so no target carries heap growth from a saturated run.
  const rows = [];
  for (const [target, base] of Object.entries(targets)) rows.push(await scenario('plain at 1000 req/s', base, { target, path: '/v1/completions', body: plainBody, connections: 16, rate: 1000 }));
  for (const [target, base] of Object.entries(targets)) rows.push(await scenario('stream at 300 req/s', base, { target, path: '/v1/chat/completions', body: streamBody, connections: 16, rate: 300 }));
  for (const [target, base] of Object.entries(targets)) rows.push(await scenario('plain max throughput', base, { target, path: '/v1/completions', body: plainBody, connections: 32 }));

  const get = (scenarioName, target) => rows.find((r) => r.scenario === scenarioName && r.target === target);
  const summary = [];
  for (const name of ['plain at 1000 req/s', 'stream at 300 req/s', 'plain max throughput']) {
    const d = get(name, 'direct');
    const r = get(name, 'router');
    const n = get(name, 'nginx');
    summary.push({
      scenario: name,
      direct: d,
      router: r,
      nginx: n,
      routerAddedP50ms: Math.round((r.p50ms - d.p50ms) * 100) / 100,
      routerAddedP99ms: Math.round((r.p99ms - d.p99ms) * 100) / 100,
      nginxAddedP50ms: n ? Math.round((n.p50ms - d.p50ms) * 100) / 100 : null,
      nginxAddedP99ms: n ? Math.round((n.p99ms - d.p99ms) * 100) / 100 : null,
      routerThroughputVsDirect: ratio(r.requestsPerSecond, d.requestsPerSecond),
      routerThroughputVsNginx: n ? ratio(r.requestsPerSecond, n.requestsPerSecond) : null,
    });
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outDir = path.join(root, 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const machine = describeMachine();
  const record = { date: new Date().toISOString(), machine, secondsPerRun: seconds, loadGenerator: 'bench/fixed-rate.js (fixed rate) and autocannon (max throughput), in the bench process', rows, summary };
  fs.writeFileSync(path.join(outDir, `router-${stamp}.json`), JSON.stringify(record, null, 2) + '\n');

  const table = [
    `Machine: ${machine}; ${seconds} s per run; load generated in the bench process; one replica (examples/model-server); nginx ${nginxBin ? 'nginx-light, 1 worker, keep-alive upstream, no buffering' : 'not available'}.`,
    '',
    '| scenario | req/s direct | req/s router | req/s nginx | router/direct | router/nginx | added p50 router | added p99 router | added p50 nginx | added p99 nginx | errors (d/r/n) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...summary.map((s) =>
      `| ${s.scenario} | ${s.direct.requestsPerSecond} | ${s.router.requestsPerSecond} | ${s.nginx?.requestsPerSecond ?? '-'} | ${s.routerThroughputVsDirect} | ${s.routerThroughputVsNginx ?? '-'} | ${s.routerAddedP50ms} ms | ${s.routerAddedP99ms} ms | ${s.nginxAddedP50ms ?? '-'} ms | ${s.nginxAddedP99ms ?? '-'} ms | ${s.direct.errors}/${s.router.errors}/${s.nginx?.errors ?? '-'} |`,
    ),
    '',
    'Fixed-rate rows: an open-loop client timing each request from when it was due (0.01 ms resolution). Max-throughput row: autocannon, 32 connections (1 ms resolution). "added" = through the proxy minus direct.',
  ].join('\n');
  fs.writeFileSync(path.join(outDir, `router-${stamp}.md`), table + '\n');
  const readme = path.join(root, 'README.md');
  const text = fs.readFileSync(readme, 'utf8');
  const updated = text.replace(/(<!-- bench:router:start -->\n)[\s\S]*?(<!-- bench:router:end -->)/, `$1${table}\n$2`);
  if (updated !== text) fs.writeFileSync(readme, updated);
  process.stdout.write(`\n${table}\n\nwritten: bench/results/router-${stamp}.json and .md\n`);
}

main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${err.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) c.kill('SIGTERM');
  });
