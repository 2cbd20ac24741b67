/**
 * The CLI's Temporal client. Reads TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE; an unreachable
 * server is exit code 3 with a hint, not a stack trace.
 */
import { connectAnswering } from '../temporal/connect';
import { Client, Connection } from '@temporalio/client';
import { temporalAddressProblem } from '../temporal/address';
import { CliError, ExitCode } from './errors';

export interface TemporalTarget {
  address: string;
  namespace: string;
}

/** TEMPORAL_ADDRESS (unset or empty: localhost:7233) and TEMPORAL_NAMESPACE; a malformed address is invalid input (exit 2). */
export function temporalTarget(env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  const address = env.TEMPORAL_ADDRESS || 'localhost:7233';
  const problem = temporalAddressProblem(address);
  if (problem) throw new CliError(`TEMPORAL_ADDRESS: ${problem}`, ExitCode.invalidInput);
  return { address, namespace: env.TEMPORAL_NAMESPACE || 'default' };
}

/** The Web UI of a dev server listens on the gRPC port + 1000 unless TEMPORAL_UI_URL says otherwise. */
export function uiUrl(target: TemporalTarget, env: NodeJS.ProcessEnv = process.env): string {
  if (env.TEMPORAL_UI_URL) return env.TEMPORAL_UI_URL.replace(/\/$/, '');
  const port = Number(/:(\d+)$/.exec(target.address)?.[1] ?? 7233);
  return `http://${target.address.replace(/:\d+$/, '')}:${port + 1000}`;
}

/**
 * The Web UI's address when there is one to link to: TEMPORAL_UI_URL as given, otherwise the dev
 * server's (port + 1000) only if something answers HTTP there. `rollout dev --headless` runs no
 * UI, and a link to nothing is worse than none. Never throws.
 */
export async function servingUiUrl(target: TemporalTarget, env: NodeJS.ProcessEnv = process.env, timeoutMs = 1000): Promise<string | undefined> {
  const url = uiUrl(target, env);
  if (env.TEMPORAL_UI_URL) return url;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.body?.cancel();
    return url;
  } catch {
    return undefined; // refused, timed out, not HTTP: no UI there
  }
}

export function workflowUiLink(ui: string, target: TemporalTarget, workflowId: string): string {
  return `${ui}/namespaces/${encodeURIComponent(target.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

export async function connectClient(target: TemporalTarget = temporalTarget()): Promise<{ client: Client; close: () => Promise<void> }> {
  let connection: Connection;
  try {
    connection = await connectAnswering(target.address);
  } catch (err) {
    throw new CliError(
      `cannot reach Temporal at ${target.address} (${err instanceof Error ? err.message : String(err)}); ` +
        'start the embedded stack with `rollout dev`, or set TEMPORAL_ADDRESS',
      ExitCode.unreachable,
    );
  }
  return { client: new Client({ connection, namespace: target.namespace }), close: () => connection.close() };
}

/** True for errors that mean the server went away mid-command. */
export { isUnreachable } from './unreachable';
