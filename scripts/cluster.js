#!/usr/bin/env node
/**
 * The self-hosted Temporal of docker-compose.yml, on this machine without Docker: the real
 * Temporal server (not the dev server) on PostgreSQL, for test/cluster and for trying it by hand.
 *
 *   node scripts/cluster.js build
 *     Builds the Temporal server and its schema tool `sql` from the Go module proxy
 *     (go install go.temporal.io/server/cmd/server@v1.32.2 and …/cmd/tools/sql, with
 *     GOTOOLCHAIN=go1.27.3: the release needs Go >= 1.26.10). About 8 minutes the first time on
 *     2 cores; skipped when both binaries are in the cache dir (below). Prints their paths.
 *   node scripts/cluster.js db --dir DIR [--port 5433]
 *     A PostgreSQL cluster of its own in DIR (initdb when DIR holds none, as the `postgres` user
 *     when run as root), started on 127.0.0.1:PORT, with the temporal and temporal_visibility
 *     databases at this release's schema (deploy/compose/temporal-schema.sh, the compose job's
 *     script, run with the `sql` tool). Idempotent. Stop it with `db-stop --dir DIR`.
 *
 * Cache: $ROLLOUT_CLUSTER_CACHE, else $XDG_CACHE_HOME (or ~/.cache)/gpu-rollout/temporal-server-<version>;
 * the Go module and build caches are Go's own (GOMODCACHE, GOCACHE). PostgreSQL is Debian's
 * `postgresql` package (installed with apt-get when missing and running as root).
 */
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const TEMPORAL_SERVER_VERSION = '1.32.2';
const GO_TOOLCHAIN = 'go1.27.3';
const SERVER_MODULE = 'go.temporal.io/server';
const DB_USER = 'temporal';

function log(msg) {
  process.stderr.write(`[cluster] ${msg}\n`);
}

function cacheDir() {
  if (process.env.ROLLOUT_CLUSTER_CACHE) return process.env.ROLLOUT_CLUSTER_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'gpu-rollout', `temporal-server-${TEMPORAL_SERVER_VERSION}`);
}

const isExecutable = (file) => {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
};

/** Go's environment for these builds: the toolchain the release needs (unless one is chosen). */
function goEnv(extra = {}) {
  return { ...process.env, GOTOOLCHAIN: process.env.GOTOOLCHAIN || GO_TOOLCHAIN, ...extra };
}

function go(args, opts = {}) {
  // Outside any module: a go.mod above the working directory must not take part.
  return execFileSync('go', args, { cwd: os.tmpdir(), env: goEnv(opts.env), encoding: 'utf8', stdio: ['ignore', opts.inherit ? 'inherit' : 'pipe', 'inherit'] });
}

/** The module's source (schema/, config/): in Go's module cache, downloaded when missing. */
function serverModuleDir() {
  const out = go(['mod', 'download', '-json', `${SERVER_MODULE}@v${TEMPORAL_SERVER_VERSION}`]);
  return JSON.parse(out).Dir;
}

/**
 * The server and `sql` binaries of TEMPORAL_SERVER_VERSION, built with `go install` into the cache
 * dir unless both are there already. Returns { server, sql, moduleDir, built, seconds }.
 */
function ensureBinaries() {
  const bin = path.join(cacheDir(), 'bin');
  const server = path.join(bin, 'server');
  const sql = path.join(bin, 'sql');
  const started = Date.now();
  let built = false;
  if (!isExecutable(server) || !isExecutable(sql)) {
    log(`building the Temporal server ${TEMPORAL_SERVER_VERSION} and its sql tool (go install, ${GO_TOOLCHAIN}; about 8 minutes the first time)…`);
    fs.mkdirSync(bin, { recursive: true });
    for (const cmd of ['cmd/server', 'cmd/tools/sql']) go(['install', `${SERVER_MODULE}/${cmd}@v${TEMPORAL_SERVER_VERSION}`], { env: { GOBIN: bin }, inherit: true });
    built = true;
  }
  const moduleDir = serverModuleDir();
  const seconds = (Date.now() - started) / 1000;
  log(`${built ? 'built' : 'cached'}: ${server}, ${sql} (${seconds.toFixed(1)} s)`);
  return { server, sql, moduleDir, built, seconds };
}

/** The newest PostgreSQL server installed from Debian's packages: its bin dir. */
function postgresBinDir({ install = true } = {}) {
  const base = '/usr/lib/postgresql';
  const find = () => {
    const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => /^\d+$/.test(v) && isExecutable(path.join(base, v, 'bin', 'initdb'))) : [];
    versions.sort((a, b) => Number(b) - Number(a));
    return versions.length ? path.join(base, versions[0], 'bin') : undefined;
  };
  let dir = find();
  if (!dir && install && process.getuid?.() === 0) {
    log('installing PostgreSQL (apt-get install postgresql)…');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'postgresql'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    dir = find();
  }
  if (!dir) throw new Error('PostgreSQL is not installed (/usr/lib/postgresql/<version>/bin/initdb): apt-get install postgresql');
  return dir;
}

/** Runs a PostgreSQL tool as the owner of the data dir: `postgres` when we are root (initdb refuses root). */
function pgTool(binDir, tool, args, opts = {}) {
  const file = path.join(binDir, tool);
  const asRoot = process.getuid?.() === 0;
  const [cmd, cmdArgs] = asRoot ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args];
  const result = spawnSync(cmd, cmdArgs, { encoding: 'utf8', cwd: '/', ...opts });
  if (result.status !== 0 && !opts.allowFailure) throw new Error(`${tool} ${args.join(' ')} failed (${result.status}): ${(result.stderr || result.stdout || '').trim()}`);
  return result;
}

/**
 * A PostgreSQL cluster of its own in `dir`, listening on 127.0.0.1:`port` (its socket in `dir`
 * too), user `temporal` with `password`. Creates it when `dir` holds none; starts it unless it runs.
 */
function startPostgres({ dir, port, password }) {
  const binDir = postgresBinDir();
  const data = path.join(dir, 'pgdata');
  const asRoot = process.getuid?.() === 0;
  fs.mkdirSync(dir, { recursive: true });
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  if (!fs.existsSync(path.join(data, 'PG_VERSION'))) {
    const pwfile = path.join(dir, 'pwfile');
    fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (asRoot) execFileSync('chown', ['postgres:postgres', pwfile]);
    pgTool(binDir, 'initdb', ['-D', data, '-U', DB_USER, `--pwfile=${pwfile}`, '--auth-host=scram-sha-256', '--auth-local=trust', '-E', 'UTF8', '--no-instructions']);
    fs.rmSync(pwfile);
  }
  const running = pgTool(binDir, 'pg_ctl', ['-D', data, 'status'], { allowFailure: true }).status === 0;
  if (!running) {
    pgTool(binDir, 'pg_ctl', ['-D', data, '-l', path.join(dir, 'postgresql.log'), '-w', '-t', '120', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start']);
  }
  log(`PostgreSQL (${path.basename(path.dirname(binDir))}) on 127.0.0.1:${port}, data in ${data}`);
  return { dir, data, port, user: DB_USER, stop: () => stopPostgres({ dir }) };
}

function stopPostgres({ dir }) {
  const data = path.join(dir, 'pgdata');
  if (!fs.existsSync(path.join(data, 'PG_VERSION'))) return;
  pgTool(postgresBinDir({ install: false }), 'pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop'], { allowFailure: true });
}

/**
 * The two databases and their schema, by the compose job's own script with the `sql` tool.
 * `env` is that job's environment (POSTGRES_SEEDS, DB_PORT, POSTGRES_USER, SQL_PASSWORD).
 */
function setupSchema({ sql, moduleDir, env }) {
  const result = spawnSync('/bin/sh', [path.join(root, 'deploy', 'compose', 'temporal-schema.sh')], {
    env: { PATH: process.env.PATH, ...env, SQL_TOOL: sql, SCHEMA_DIR: path.join(moduleDir, 'schema', 'postgresql', 'v12') },
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`deploy/compose/temporal-schema.sh failed (${result.status}):\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

module.exports = { TEMPORAL_SERVER_VERSION, GO_TOOLCHAIN, cacheDir, ensureBinaries, postgresBinDir, startPostgres, stopPostgres, setupSchema };

function option(args, name, fallback) {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const value = args[at + 1];
  if (value === undefined || value.startsWith('--')) throw new Error(`${name}: expected a value`);
  return value;
}

if (require.main === module) {
  const [command, ...args] = process.argv.slice(2);
  try {
    if (command === 'build') {
      const { server, sql, moduleDir } = ensureBinaries();
      process.stdout.write(`server ${server}\nsql ${sql}\nmodule ${moduleDir}\n`);
    } else if (command === 'db' || command === 'db-stop') {
      const dir = option(args, '--dir');
      if (!dir) throw new Error('--dir: expected the directory of the PostgreSQL cluster');
      if (command === 'db-stop') {
        stopPostgres({ dir: path.resolve(dir) });
      } else {
        const port = Number(option(args, '--port', '5433'));
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port: expected a port number, got ${option(args, '--port')}`);
        const password = process.env.POSTGRES_PASSWORD;
        if (!password) throw new Error('POSTGRES_PASSWORD is not set: the password of the cluster\'s user temporal');
        const { sql, moduleDir } = ensureBinaries();
        startPostgres({ dir: path.resolve(dir), port, password });
        process.stdout.write(setupSchema({ sql, moduleDir, env: { POSTGRES_SEEDS: '127.0.0.1', DB_PORT: String(port), POSTGRES_USER: DB_USER, SQL_PASSWORD: password } }));
      }
    } else {
      throw new Error(`expected a command: build, db --dir DIR [--port N], db-stop --dir DIR; got ${command === undefined ? 'none' : JSON.stringify(command)}`);
    }
  } catch (err) {
    process.stderr.write(`[cluster] error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err instanceof Error && /^(--|expected|POSTGRES_PASSWORD)/.test(err.message) ? 2 : 1);
  }
}
