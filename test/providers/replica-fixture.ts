/** Shared setup for provider tests: temp state dirs, the fixture server command, cleanup. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { request } from 'undici';
import { LocalProvider, type LocalProviderOptions } from '../../src/providers/local';
import type { LaunchRequest } from '../../src/providers/types';
import { waitUntil } from '../helpers/wait';

const SERVER = path.join(__dirname, 'fixtures', 'replica-server.js');

/** `node replica-server.js` with the given behaviour variables (see the fixture). */
export function serverRun(vars: Record<string, string> = {}): string {
  const assignments = Object.entries(vars).map(([k, v]) => `${k}=${JSON.stringify(v)} `).join('');
  return `${assignments}${JSON.stringify(process.execPath)} ${JSON.stringify(SERVER)}`;
}

export function launchRequest(replicaId: string, overrides: Partial<LaunchRequest> = {}): LaunchRequest {
  return { replicaId, service: 'llm', version: 1, run: serverRun(), env: {}, gpus: 0, ...overrides };
}

export interface LogCapture {
  logger: pino.Logger;
  lines: string[];
}

export function captureLogs(): LogCapture {
  const lines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  return { logger, lines };
}

/** Providers made through it are cleaned up by `cleanup()`: every replica terminated, state removed. */
export class ProviderSandbox {
  readonly stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'local-provider-'));
  private readonly providers: LocalProvider[] = [];

  provider(opts: Partial<LocalProviderOptions> = {}): LocalProvider {
    const provider = new LocalProvider({ stateDir: this.stateDir, logger: pino({ level: 'silent' }), terminateGraceMs: 2000, ...opts });
    this.providers.push(provider);
    return provider;
  }

  async cleanup(): Promise<void> {
    const cleaner = new LocalProvider({ stateDir: this.stateDir, logger: pino({ level: 'silent' }), terminateGraceMs: 500 });
    const replicas = await cleaner.list();
    await Promise.all(replicas.map((r) => cleaner.terminate(r.replicaId)));
    fs.rmSync(this.stateDir, { recursive: true, force: true });
  }
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await request(url);
  return (await res.body.json()) as T;
}

/** Polls until `fn` returns true, failing the test after `timeoutMs` (a backstop: see waitUntil). */
export function eventually(fn: () => Promise<boolean>, timeoutMs = 30_000, what = 'condition'): Promise<void> {
  return waitUntil(fn, what, timeoutMs, 50);
}

/** Whether the replica at `endpoint` answers its /health with 200 (false while it cannot be reached). */
export async function answers(endpoint: string): Promise<boolean> {
  try {
    const res = await request(`${endpoint}/health`);
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}
