#!/usr/bin/env node
/**
 * cargo, found on PATH or where rustup puts it (a shell that did not source ~/.cargo/env), so
 * `npm run setup` and `npm test` work in a fresh login too. `node scripts/cargo.js <args>` runs it.
 */
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

function findCargo() {
  const home = process.env.CARGO_HOME || path.join(os.homedir(), '.cargo');
  for (const candidate of ['cargo', path.join(home, 'bin', 'cargo')]) {
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // not this one
    }
  }
  throw new Error('cargo not found: the router is built from Rust (native/router); install the toolchain from https://rustup.rs and run `npm run setup` again');
}

module.exports = { findCargo };

if (require.main === module) {
  let cargo;
  try {
    cargo = findCargo();
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  const result = spawnSync(cargo, process.argv.slice(2), { stdio: 'inherit', cwd: path.resolve(__dirname, '..') });
  process.exit(result.status ?? 1);
}
