/**
 * The CLI's Temporal client. Reads TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE; an unreachable
 * server is exit code 3 with a hint, not a stack trace.
 */
import { Client, Connection } from '@temporalio/client';
import { CliError, ExitCode } from './errors';

export interface TemporalTarget {
  address: string;
  namespace: string;
}

export function temporalTarget(env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  return { address: env.TEMPORAL_ADDRESS ?? 'localhost:7233', namespace: env.TEMPORAL_NAMESPACE ?? 'default' };
}

/** The Web UI of a dev server listens on the gRPC port + 1000 unless TEMPORAL_UI_URL says otherwise. */
export function uiUrl(target: TemporalTarget, env: NodeJS.ProcessEnv = process.env): string {
  if (env.TEMPORAL_UI_URL) return env.TEMPORAL_UI_URL.replace(/\/$/, '');
  const [host, port] = target.address.split(':');
  return `http://${host}:${Number(port ?? 7233) + 1000}`;
}

export function workflowUiLink(target: TemporalTarget, workflowId: string): string {
  return `${uiUrl(target)}/namespaces/${encodeURIComponent(target.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

export async function connectClient(target: TemporalTarget = temporalTarget()): Promise<{ client: Client; close: () => Promise<void> }> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: target.address, connectTimeout: '5s' });
    await connection.workflowService.getSystemInfo({});
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
