/**
 * docker-compose.yml as `docker compose` reads it, for the tests that hold it to the code
 * (test/compose) and run its services on the real thing (test/cluster): the YAML, its `${VAR}`
 * references interpolated from a .env-style map (the compose-spec's syntax: `$$`, `$VAR`,
 * `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`,
 * `${VAR:+alt}`, `${VAR+alt}`), and a service's command and environment.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

export const ROOT = path.resolve(__dirname, '..', '..');
export const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');
export const ENV_EXAMPLE = path.join(ROOT, '.env.example');

export interface ComposeService {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: Record<string, { condition?: string }> | string[];
  healthcheck?: { test?: string[] | string; disable?: boolean };
  ports?: Array<string | { target?: number; published?: string | number; host_ip?: string }>;
  volumes?: Array<string | { source?: string; target?: string }>;
  network_mode?: string;
  secrets?: Array<string | { source: string }>;
  restart?: string;
  [key: string]: unknown;
}

export interface ComposeFile {
  name?: string;
  services: Record<string, ComposeService>;
  secrets?: Record<string, { environment?: string; file?: string }>;
  volumes?: Record<string, unknown>;
  [key: string]: unknown;
}

/** A .env file's KEY=VALUE lines (comments and blank lines skipped; one pair of quotes removed). */
export function parseDotEnv(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) throw new Error(`.env line is not KEY=VALUE: ${line}`);
    vars[match[1]] = match[2].replace(/^(['"])(.*)\1$/, '$2');
  }
  return vars;
}

export class InterpolationError extends Error {
  override name = 'InterpolationError';
}

/** One string with its variable references resolved from `vars`, as compose does. */
export function interpolate(value: string, vars: Record<string, string | undefined>): string {
  return value.replace(/\$(\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (whole, what: string, braced: string | undefined, bare: string | undefined) => {
    if (what === '$') return '$';
    if (bare !== undefined) return vars[bare] ?? '';
    const match = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])(.*))?$/s.exec(braced ?? '');
    if (!match) throw new InterpolationError(`invalid interpolation format: ${whole}`);
    const [, name, colon, op, arg] = match;
    const current = vars[name];
    const unset = colon ? current === undefined || current === '' : current === undefined;
    if (!op) return current ?? '';
    if (op === '-') return unset ? interpolate(arg, vars) : (current as string);
    if (op === '+') return unset ? '' : interpolate(arg, vars);
    if (unset) throw new InterpolationError(`required variable ${name} is missing a value: ${arg}`);
    return current as string;
  });
}

/** Every string in a parsed YAML document interpolated (keys are not, as in compose). */
export function interpolateAll<T>(node: T, vars: Record<string, string | undefined>): T {
  if (typeof node === 'string') return interpolate(node, vars) as T;
  if (Array.isArray(node)) return node.map((n: unknown) => interpolateAll(n, vars)) as T;
  if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateAll(v, vars)])) as T;
  return node;
}

/** The compose file as written (no interpolation). */
export function readComposeRaw(file = COMPOSE_FILE): ComposeFile {
  return YAML.parse(fs.readFileSync(file, 'utf8')) as ComposeFile;
}

/** .env.example's values, with `overrides` (e.g. the secrets it leaves empty) over them. */
export function exampleEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return { ...parseDotEnv(fs.readFileSync(ENV_EXAMPLE, 'utf8')), ...overrides };
}

/** The compose file with its variables resolved from `vars`. */
export function readCompose(vars: Record<string, string | undefined>, file = COMPOSE_FILE): ComposeFile {
  return interpolateAll(readComposeRaw(file), vars);
}

/** A service's environment as a map of strings (either form compose allows). */
export function serviceEnv(service: ComposeService): Record<string, string> {
  const env = service.environment ?? {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((item) => {
      const at = item.indexOf('=');
      return at < 0 ? [item, ''] : [item.slice(0, at), item.slice(at + 1)];
    }));
  }
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** A service's command as an argument list (the exec form this file uses). */
export function serviceCommand(service: ComposeService): string[] {
  const command = service.command;
  if (command === undefined) return [];
  if (!Array.isArray(command)) throw new Error(`command must be in exec form (a list), got ${JSON.stringify(command)}`);
  return command;
}

/** Test values for the secrets .env.example leaves empty. */
export const TEST_SECRETS = { POSTGRES_PASSWORD: 'cluster-test-password', ROUTER_TOKEN: 'cluster-test-router-token' };
