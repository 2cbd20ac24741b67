/**
 * Secret references in a spec's `env`: `{from_env: NAME}` (the value of NAME in the worker's
 * environment) or `{from_file: /path}` (the contents of a file on the worker, one trailing
 * newline dropped). The reference is what travels through workflows, history, status and the UI;
 * the value is read only inside the launch activity, on the worker, and handed to the provider —
 * never returned, logged or written to history. Pure except `resolveEnv`'s injected readers.
 */
export type SecretRef = { from_env: string } | { from_file: string };

/** One `env` entry: a literal value or a reference. */
export type EnvValue = string | SecretRef;

export function isSecretRef(value: unknown): value is SecretRef {
  return typeof value === 'object' && value !== null && ('from_env' in value || 'from_file' in value);
}

/** How a value shows in status, plan and messages: the literal, or `<secret from env HF_TOKEN>`. */
export function describeEnvValue(value: EnvValue): string {
  if (!isSecretRef(value)) return value;
  return 'from_env' in value ? `<secret from env ${value.from_env}>` : `<secret from file ${value.from_file}>`;
}

/** A reference that the worker cannot resolve: says which and why, never a value. */
export class SecretUnavailableError extends Error {
  constructor(
    readonly variable: string,
    why: string,
  ) {
    super(`env.${variable}: ${why}`);
  }
}

export interface SecretReaders {
  /** The worker's environment. */
  env: Record<string, string | undefined>;
  /** Reads a file (throws as fs does). */
  readFile(path: string): string;
}

/** The replica's environment with every reference resolved (on the worker, in the launch only). */
export function resolveEnv(env: Record<string, EnvValue>, readers: SecretReaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!isSecretRef(value)) {
      out[name] = value;
    } else if ('from_env' in value) {
      const found = readers.env[value.from_env];
      if (found === undefined) throw new SecretUnavailableError(name, `the worker has no environment variable ${value.from_env}`);
      out[name] = found;
    } else {
      try {
        out[name] = readers.readFile(value.from_file).replace(/\r?\n$/, '');
      } catch (err) {
        throw new SecretUnavailableError(name, `cannot read ${value.from_file} on the worker (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
    }
    // The kernel cannot pass a NUL byte in an environment value, and Node's refusal quotes the
    // value: said here without it, so a secret never reaches a message (status, history, logs).
    if (isSecretRef(value) && out[name].includes('\0')) {
      throw new SecretUnavailableError(name, `the secret ${'from_env' in value ? `in ${value.from_env}` : `in ${value.from_file}`} holds a NUL byte, which an environment value cannot`);
    }
  }
  return out;
}

/** Names that usually hold credentials; a literal value under one is stored in Temporal as is. */
const SECRET_LOOKING = /(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL)/i;

/** `env` names whose literal values look like secrets (for a warning: use a reference instead). */
export function literalSecretsIn(env: Record<string, EnvValue>): string[] {
  return Object.entries(env)
    .filter(([name, value]) => !isSecretRef(value) && SECRET_LOOKING.test(name) && value !== '')
    .map(([name]) => name)
    .sort();
}
