/**
 * moto's EC2 API on loopback for the AWS provider's tests: `.venv/bin/moto_server` (installed by
 * scripts/setup.js from requirements-dev.txt) on 127.0.0.1 and a port from freePort(), stopped by
 * its pid. `awsTestEnv` points the SDK's standard variables at it (endpoint, dummy credentials,
 * no instance metadata service), and refuses any endpoint that is not loopback: nothing a test
 * does can reach amazonaws.com or 169.254.169.254.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './ports';
import { waitUntil } from './wait';

const MOTO = path.resolve(__dirname, '..', '..', '.venv', 'bin', 'moto_server');

export interface MotoServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** `env`: extra variables for moto (MOTO_ENABLE_AMI_VALIDATION, MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION). */
export async function startMoto(env: Record<string, string> = {}): Promise<MotoServer> {
  if (!fs.existsSync(MOTO)) throw new Error(`${MOTO} is missing: run \`node scripts/setup.js\` (it installs moto[server] from requirements-dev.txt)`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(MOTO, ['-H', '127.0.0.1', '-p', String(port)], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  let exited = false;
  child.once('exit', () => (exited = true));
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start moto_server');
  await waitUntil(
    async () => {
      if (exited) throw new Error(`moto_server exited: ${stderr}`);
      try {
        return (await fetch(`${url}/moto-api/reset`, { method: 'POST' })).ok;
      } catch {
        return false;
      }
    },
    `moto_server on ${url}`,
    60_000,
    100,
  );
  return {
    url,
    pid,
    async stop() {
      if (exited) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      process.kill(pid, 'SIGTERM');
      await Promise.race([gone, new Promise((resolve) => setTimeout(resolve, 5000))]);
      if (!exited) process.kill(pid, 'SIGKILL');
    },
  };
}

/** Only loopback endpoints: a test that would reach anything else fails at once. */
export function assertLoopback(url: string | undefined): string {
  if (!url) throw new Error('AWS_ENDPOINT_URL is not set: AWS tests must point the SDK at moto on loopback');
  const host = new URL(url).hostname;
  if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== 'localhost' && host !== '[::1]') throw new Error(`AWS endpoint ${url} is not loopback`);
  return url;
}

/**
 * Sets the SDK's standard variables for moto at `url` (and returns a function restoring them).
 * `variable`: AWS_ENDPOINT_URL (every service) or AWS_ENDPOINT_URL_EC2 (EC2 only).
 */
export function awsTestEnv(url: string, variable: 'AWS_ENDPOINT_URL' | 'AWS_ENDPOINT_URL_EC2' = 'AWS_ENDPOINT_URL'): () => void {
  assertLoopback(url);
  const names = ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_EC2', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_EC2_METADATA_DISABLED', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE'];
  const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
  for (const n of names) delete process.env[n];
  Object.assign(process.env, {
    [variable]: url,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    // No profile of the machine's own: the chain stops at the variables above.
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  });
  return () => {
    for (const n of names) {
      if (saved[n] === undefined) delete process.env[n];
      else process.env[n] = saved[n];
    }
  };
}
