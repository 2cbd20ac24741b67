/**
 * The CLI's Temporal client. The connection is read as Temporal's own tools read it (a profile of
 * the config file, the TEMPORAL_* variables, the global flags: src/temporal/connection-config.ts);
 * a bad setting is exit 2 before anything is contacted; a server that cannot be reached, a failed
 * TLS handshake or refused credentials is exit 3 with one line saying which, not a stack trace.
 */
import { connectAnswering, explainConnectFailure } from '../temporal/connect';
import { Client, type Connection } from '@temporalio/client';
import { ConnectionConfigError, loadConnectionConfig, type ConnectionFlags, type TemporalTarget } from '../temporal/connection-config';
import { CliError, ExitCode } from './errors';

export type { ConnectionFlags, TemporalTarget };

/** Where to connect, from the flags, the environment and the config file; a bad setting is invalid input (exit 2). */
export function temporalTarget(flags: ConnectionFlags = {}, env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  try {
    return loadConnectionConfig(flags, env);
  } catch (err) {
    if (err instanceof ConnectionConfigError) throw new CliError(err.message, ExitCode.invalidInput);
    throw err;
  }
}

/** What to set when Temporal is not there. */
export const UNREACHABLE_HINT = 'start the embedded stack with `rollout dev`, or point at yours with TEMPORAL_ADDRESS, --address or a --profile';

/** A connection that failed, as the CLI's exit 3 with one line saying why. */
export async function connectFailure(err: unknown, target: TemporalTarget): Promise<CliError> {
  const failure = await explainConnectFailure(err, target);
  return new CliError(failure.kind === 'unreachable' ? `${failure.message}; ${UNREACHABLE_HINT}` : failure.message, ExitCode.unreachable);
}

/** The Web UI of a dev server listens on the gRPC port + 1000 unless TEMPORAL_UI_URL says otherwise. */
export function uiUrl(target: Pick<TemporalTarget, 'address'>, env: NodeJS.ProcessEnv = process.env): string {
  if (env.TEMPORAL_UI_URL) return env.TEMPORAL_UI_URL.replace(/\/$/, '');
  const port = Number(/:(\d+)$/.exec(target.address)?.[1] ?? 7233);
  return `http://${target.address.replace(/:\d+$/, '')}:${port + 1000}`;
}

/**
 * The Web UI's address when there is one to link to: TEMPORAL_UI_URL as given, otherwise the dev
 * server's (port + 1000) only if something answers HTTP there. `rollout dev --headless` runs no
 * UI, and a link to nothing is worse than none. Never throws.
 */
export async function servingUiUrl(target: Pick<TemporalTarget, 'address' | 'tls'>, env: NodeJS.ProcessEnv = process.env, timeoutMs = 1000): Promise<string | undefined> {
  const url = uiUrl(target, env);
  if (env.TEMPORAL_UI_URL) return url;
  // A dev server's UI is plain HTTP at port + 1000; a server reached over TLS (Temporal Cloud) has its UI elsewhere.
  if (target.tls) return undefined;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.body?.cancel();
    return url;
  } catch {
    return undefined; // refused, timed out, not HTTP: no UI there
  }
}

export function workflowUiLink(ui: string, target: Pick<TemporalTarget, 'namespace'>, workflowId: string): string {
  return `${ui}/namespaces/${encodeURIComponent(target.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

export async function connectClient(target: TemporalTarget = temporalTarget()): Promise<{ client: Client; close: () => Promise<void> }> {
  let connection: Connection;
  try {
    connection = await connectAnswering(target);
  } catch (err) {
    throw await connectFailure(err, target);
  }
  return { client: new Client({ connection, namespace: target.namespace }), close: () => connection.close() };
}

/** True for errors that mean the server went away mid-command. */
export { isUnreachable } from './unreachable';
