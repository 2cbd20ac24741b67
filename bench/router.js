#!/usr/bin/env node
/**
 * `npm run bench:router`: the router (its binary, native/router) against the same replica
 * reached directly and through nginx (Debian's package, configured the same way: one worker process, keep-alive upstream,
 * no buffering), side by side in one run. The replica, the router, nginx and the fixed-rate
 * load generator each run as their own process.
 *
 * Scenarios: latency at a fixed 1,000 requests/s and of streaming (SSE) requests at a fixed
 * rate (bench/fixed-rate.js, sub-millisecond, in a child process of its own, warmed up first);
 * maximum throughput of plain requests (autocannon, in this process, which does nothing else
 * meanwhile). Fixed-rate runs are interleaved: BENCH_ROUNDS rounds (default 8), each giving
 * every target a slice of the run in a rotating order, percentiles over the pooled slices; so
 * a burst of load from elsewhere on a shared machine falls on all targets alike instead of on
 * whichever ran at that moment. The proxies' CPU time per request is read from /proc.
 * Results: bench/results/router-<time>.json and .md, and the README's table between the
 * bench:router markers. BENCH_EXTRA_ROUTERS=label=path,… adds other router binaries as targets
 * (an earlier build, to compare a change in one run); such a run leaves the README alone.
 */
'use strict';
const autocannon = require('autocannon');
const { summarize } = require('./fixed-rate');
const { bindable } = require('./control/ports');
const { fork, spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const rounds = Number(process.env.BENCH_ROUNDS ?? 8);
const children = [];

/** The fixed-rate load generator, a child process of its own (bench/fixed-rate.js over IPC). */
function loadGenerator() {
  const child = fork(path.join(__dirname, 'fixed-rate.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  const waiting = new Map();
  let next = 0;
  child.on('message', (m) => {
    const w = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.error) w.reject(new Error(m.error));
    else w.resolve(m.result);
  });
  child.on('exit', (code) => {
    for (const w of waiting.values()) w.reject(new Error(`load generator exited (${code})`));
  });
  return (opts) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      waiting.set(id, { resolve, reject });
      child.send({ id, ...opts });
    });
}

/** CPU time (ms, user + system) of a process and its children (nginx's worker), from /proc. */
function cpuMs(pid) {
  if (!pid || process.platform !== 'linux') return undefined;
  const pids = [pid];
  try {
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const kids = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (kids) pids.push(...kids.split(/\s+/).map(Number));
    }
  } catch {
    // no children list: the process alone
  }
  let ticks = 0;
  for (const p of pids) {
    try {
      const fields = fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      return undefined;
    }
  }
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

/** How busy the machine is besides this bench: load average and CPU pressure (Linux PSI). */
function machineLoad() {
  let pressure = null;
  try {
    pressure = Number(/some avg10=[\d.]+ avg60=([\d.]+)/.exec(fs.readFileSync('/proc/pressure/cpu', 'utf8'))?.[1]);
  } catch {
    // no PSI
  }
  return { loadAverage1m: Math.round(os.loadavg()[0] * 100) / 100, cpuPressureSomeAvg60: pressure };
}

/**
 * A port for one of the bench's processes: from BENCH_PORT_BASE upwards (the next bindable one,
 * so several people on one machine keep to their own blocks), else one the kernel picks.
 */
const portBase = process.env.BENCH_PORT_BASE ? Number(process.env.BENCH_PORT_BASE) : undefined;
let nextPort = portBase;
function kernelPickedPort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
async function freePort() {
  if (portBase === undefined) return kernelPickedPort();
  while (nextPort < portBase + 100) {
    const port = nextPort++;
    if (await bindable(port)) return port;
  }
  throw new Error(`no bindable port left in BENCH_PORT_BASE's ${portBase}–${portBase + 99}`);
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
  child.on('error', (err) => process.stderr.write(`[bench] ${command}: ${err.message}\n`));
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

function report(row) {
  const cpu = row.cpuUsPerRequest === undefined ? '' : `  cpu ${row.cpuUsPerRequest} µs/req`;
  process.stderr.write(`[bench] ${row.scenario.padEnd(22)} ${row.target.padEnd(7)} ${String(row.requestsPerSecond).padStart(6)} req/s  p50 ${row.p50ms} ms  p99 ${row.p99ms} ms  errors ${row.errors}${cpu}\n`);
  return row;
}

async function throughput(name, target, base, opts) {
  const result = await run({ url: `${base}${opts.path}`, method: 'POST', headers: { 'content-type': 'application/json' }, body: opts.body, connections: opts.connections, ...(opts.duration ? { duration: opts.duration } : {}) });
  return report({ scenario: name, target, requestsPerSecond: Math.round(result.requests.average), p50ms: result.latency.p50, p99ms: result.latency.p99, errors: result.errors + result.non2xx + result.timeouts });
}

/**
 * Maximum throughput on every target, interleaved like the fixed-rate runs (half as many rounds,
 * each at least 1 s): requests/s over all rounds; p50/p99 the median of the rounds' figures.
 */
async function throughputScenario(name, targets, opts) {
  const names = Object.keys(targets);
  const n = Math.max(1, Math.min(Math.floor(rounds / 2), Math.floor(seconds)));
  const results = Object.fromEntries(names.map((t) => [t, []]));
  for (let r = 0; r < n; r++) {
    for (const t of names.map((_, i) => names[(i + r) % names.length])) {
      const result = await run({ url: `${targets[t]}${opts.path}`, method: 'POST', headers: { 'content-type': 'application/json' }, body: opts.body, connections: opts.connections, duration: seconds / n });
      results[t].push(result);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return names.map((t) =>
    report({
      scenario: name,
      target: t,
      requestsPerSecond: Math.round(results[t].reduce((a, x) => a + x.requests.total, 0) / seconds),
      p50ms: median(results[t].map((x) => x.latency.p50)),
      p99ms: median(results[t].map((x) => x.latency.p99)),
      errors: results[t].reduce((a, x) => a + x.errors + x.non2xx + x.timeouts, 0),
    }),
  );
}

/**
 * A fixed-rate scenario on every target, interleaved: `rounds` rounds, each giving every
 * target `seconds / rounds` in a rotating order; percentiles over each target's pooled slices.
 */
async function fixedRateScenario(name, targets, pids, fire, opts) {
  const names = Object.keys(targets);
  const slices = Object.fromEntries(names.map((t) => [t, []]));
  const cpu = Object.fromEntries(names.map((t) => [t, 0]));
  for (let r = 0; r < rounds; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]);
    for (const t of order) {
      const before = cpuMs(pids[t]);
      slices[t].push(await fire({ url: `${targets[t]}${opts.path}`, body: opts.body, rate: opts.rate, seconds: seconds / rounds, connections: opts.connections }));
      const after = cpuMs(pids[t]);
      cpu[t] = before === undefined || after === undefined || cpu[t] === undefined ? undefined : cpu[t] + (after - before);
    }
  }
  return names.map((t) => {
    const row = { scenario: name, target: t, ...summarize(slices[t]) };
    const answered = slices[t].reduce((a, s) => a + s.latencies.length, 0);
    if (pids[t] && cpu[t] !== undefined && answered) row.cpuUsPerRequest = Math.round((cpu[t] * 1000) / answered);
    return report(row);
  });
}

function describeMachine() {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

function ratio(a, b) {
  return b ? Math.round((a / b) * 100) / 100 : null;
}

/** A router process (its binary) with one route, `llm` → the replica; its traffic base URL. */
async function startRouter(binary, replicaUrl, pids, label) {
  const [trafficPort, adminPort] = [await freePort(), await freePort()];
  const token = 'bench-token';
  pids[label] = start(binary, [], { ROUTER_TRAFFIC_PORT: String(trafficPort), ROUTER_ADMIN_PORT: String(adminPort), ROUTER_TOKEN: token }).pid;
  await waitHttp(`http://127.0.0.1:${adminPort}/healthz`);
  const put = await fetch(`http://127.0.0.1:${adminPort}/v1/services/llm/backends`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ backends: [{ replicaId: 'bench-r1', version: 1, url: replicaUrl, weight: 1 }] }),
  });
  if (put.status !== 200) throw new Error(`router ${label} refused the route: ${put.status}`);
  return `http://127.0.0.1:${trafficPort}/llm`;
}

async function main() {
  // The router as it runs in service: its binary (native/router, found as src/router/binary.ts
  // finds it), built by setup if missing.
  const findRouter = () => {
    try {
      return require(path.join(root, 'dist', 'router', 'binary.js')).routerBinary();
    } catch {
      return undefined;
    }
  };
  if (!findRouter()) execFileSync(process.execPath, [path.join(root, 'scripts', 'setup.js')], { stdio: 'inherit' });
  const routerBinary = require(path.join(root, 'dist', 'router', 'binary.js')).routerBinary();

  const replicaPort = await freePort();
  const pids = {};
  start(process.execPath, [path.join(root, 'examples', 'model-server', 'server.js')], { PORT: String(replicaPort), TOKEN_DELAY_MS: '0', MODEL_VERSION: 'bench' });
  const direct = `http://127.0.0.1:${replicaPort}`;
  await waitHttp(`${direct}/health`);

  const router = await startRouter(routerBinary, direct, pids, 'router');
  const targets = { direct, router };
  // BENCH_EXTRA_ROUTERS=label=path,…: other router binaries (an earlier build, say) measured in
  // the same run as further targets, so a change is compared side by side rather than across runs.
  const extras = (process.env.BENCH_EXTRA_ROUTERS ?? '').split(',').filter(Boolean).map((item, i) => {
    const [label, binary] = item.includes('=') ? item.split('=', 2) : [`router${i + 2}`, item];
    return { label, binary: path.resolve(binary) };
  });
  for (const { label, binary } of extras) targets[label] = await startRouter(binary, direct, pids, label);
  const nginxBin = ensureNginx();
  if (nginxBin) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-nginx-'));
    const nginxPort = await freePort();
    fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxConfig(dir, nginxPort, replicaPort));
    pids.nginx = start(nginxBin, ['-c', path.join(dir, 'nginx.conf'), '-p', dir]).pid;
    targets.nginx = `http://127.0.0.1:${nginxPort}/llm`;
    await waitHttp(`${targets.nginx}/health`);
  } else process.stderr.write('[bench] nginx unavailable: its column is left out\n');

  // Warm up every path (JIT, keep-alive pools) and the load generator itself.
  const fire = loadGenerator();
  const loadBefore = machineLoad();
  for (const [target, base] of Object.entries(targets)) {
    await throughput('warm-up', target, base, { path: '/v1/completions', body: plainBody, connections: 8, duration: Math.min(seconds, 3) });
    // Long enough at the measured rate for V8 to settle (JIT tiers, young-generation size), as a router in service has.
    await fire({ url: `${base}/v1/completions`, body: plainBody, rate: 1000, seconds: 10, connections: 16 });
    await fire({ url: `${base}/v1/chat/completions`, body: streamBody, rate: 300, seconds: 1, connections: 16 });
  }

  // Fixed-rate latency runs first, so no target carries heap growth from a saturated run.
  const rows = [];
  rows.push(...(await fixedRateScenario('plain at 1000 req/s', targets, pids, fire, { path: '/v1/completions', body: plainBody, connections: 16, rate: 1000 })));
  rows.push(...(await fixedRateScenario('stream at 300 req/s', targets, pids, fire, { path: '/v1/chat/completions', body: streamBody, connections: 16, rate: 300 })));
  rows.push(...(await throughputScenario('plain max throughput', targets, { path: '/v1/completions', body: plainBody, connections: 32 })));
  const loadAfter = machineLoad();

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
      routerCpuUsPerRequest: r.cpuUsPerRequest ?? null,
      nginxCpuUsPerRequest: n?.cpuUsPerRequest ?? null,
    });
  }

  // The extra routers, each against direct and against the router under test.
  const extraRouters = extras.map(({ label, binary }) => ({
    label,
    binary,
    scenarios: summary.map((s) => {
      const e = get(s.scenario, label);
      return {
        scenario: s.scenario,
        requestsPerSecond: e.requestsPerSecond,
        addedP50ms: Math.round((e.p50ms - s.direct.p50ms) * 100) / 100,
        addedP99ms: Math.round((e.p99ms - s.direct.p99ms) * 100) / 100,
        throughputVsRouter: ratio(e.requestsPerSecond, s.router.requestsPerSecond),
        cpuUsPerRequest: e.cpuUsPerRequest ?? null,
      };
    }),
  }));
  for (const x of extraRouters) {
    for (const s of x.scenarios) process.stderr.write(`[bench] ${x.label}: ${s.scenario}: added p50 ${s.addedP50ms} ms, p99 ${s.addedP99ms} ms, ${s.requestsPerSecond} req/s (${s.throughputVsRouter} of router), cpu ${s.cpuUsPerRequest ?? '-'} µs/req\n`);
  }

  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outDir = path.join(root, 'bench', 'results');
  fs.mkdirSync(outDir, { recursive: true });
  const machine = describeMachine();
  const record = { date: new Date().toISOString(), machine, secondsPerRun: seconds, rounds, machineLoad: { before: loadBefore, after: loadAfter }, loadGenerator: 'bench/fixed-rate.js in a child process of its own (fixed rate, interleaved rounds); autocannon in the bench process (max throughput)', rows, summary, ...(extraRouters.length ? { extraRouters } : {}) };
  fs.writeFileSync(path.join(outDir, `router-${stamp}.json`), JSON.stringify(record, null, 2) + '\n');

  const table = [
    `Machine: ${machine}; load average ${loadBefore.loadAverage1m} → ${loadAfter.loadAverage1m}${loadAfter.cpuPressureSomeAvg60 === null ? '' : `, CPU pressure (PSI some, 60 s) ${loadBefore.cpuPressureSomeAvg60}% → ${loadAfter.cpuPressureSomeAvg60}%`}; ${seconds} s per target and scenario; one replica (examples/model-server); router: native/router (Rust, hyper, one thread); nginx ${nginxBin ? 'nginx-light, 1 worker, keep-alive upstream, no buffering' : 'not available'}.`,
    '',
    '| scenario | req/s direct | req/s router | req/s nginx | router/direct | router/nginx | added p50 router | added p99 router | added p50 nginx | added p99 nginx | CPU µs/req router/nginx | errors (d/r/n) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...summary.map((s) =>
      `| ${s.scenario} | ${s.direct.requestsPerSecond} | ${s.router.requestsPerSecond} | ${s.nginx?.requestsPerSecond ?? '-'} | ${s.routerThroughputVsDirect} | ${s.routerThroughputVsNginx ?? '-'} | ${s.routerAddedP50ms} ms | ${s.routerAddedP99ms} ms | ${s.nginxAddedP50ms ?? '-'} ms | ${s.nginxAddedP99ms ?? '-'} ms | ${s.routerCpuUsPerRequest ?? '-'}/${s.nginxCpuUsPerRequest ?? '-'} | ${s.direct.errors}/${s.router.errors}/${s.nginx?.errors ?? '-'} |`,
    ),
    '',
    `Fixed-rate rows: an open-loop client in a process of its own, timing each request from when it was due (0.01 ms resolution); ${rounds} interleaved rounds per scenario, percentiles over the pooled rounds. Max-throughput row: autocannon, 32 connections, interleaved rounds too (req/s over all rounds, p50/p99 the median round's; 1 ms resolution). "added" = through the proxy minus direct. CPU µs/req: the proxy process's user + system time per request in the fixed-rate run (nginx: master and worker).`,
  ].join('\n');
  fs.writeFileSync(path.join(outDir, `router-${stamp}.md`), table + '\n');
  const readme = path.join(root, 'README.md');
  const text = fs.readFileSync(readme, 'utf8');
  const updated = text.replace(/(<!-- bench:router:start -->\n)[\s\S]*?(<!-- bench:router:end -->)/, `$1${table}\n$2`);
  // A run with extra routers is a comparison between builds, not the README's figures.
  if (updated !== text && !extraRouters.length) fs.writeFileSync(readme, updated);
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
