/**
 * What the CLI says, and which exit code it gives, for an error a command threw: its own
 * errors as they are, Temporal not answering (exit 3), Temporal answering with a refusal (exit 1,
 * in the server's words, with what to do where we know), and anything else by its message (the
 * stack only with ROLLOUT_DEBUG=1: it is a bug report, not something a user can act on).
 */
import { CliError, ExitCode } from './errors';
import { GRPC_CREDENTIALS_REFUSED, GRPC_FAILED_PRECONDITION, grpcCodeOf, grpcDetailsOf, isUnreachable } from './unreachable';

export interface FailureText {
  message: string;
  exitCode: number;
}

export function describeFailure(err: unknown): FailureText {
  if (err instanceof CliError) return { message: err.message, exitCode: err.exitCode };
  const text = err instanceof Error ? err.message : String(err);
  // A query is answered by a worker: Temporal itself may be fine while none runs the workflow.
  if (isUnreachable(err) && /Failed to query Workflow/i.test(text)) {
    return { message: `no answer to the query in time: no worker is running the workflow (is \`rollout worker\` or \`rollout dev\` running, and not stopped?), or Temporal is unreachable (${text})`, exitCode: ExitCode.unreachable };
  }
  if (isUnreachable(err)) return { message: `Temporal became unreachable: ${text}`, exitCode: ExitCode.unreachable };
  const code = grpcCodeOf(err);
  if (code !== undefined && GRPC_CREDENTIALS_REFUSED.has(code)) {
    // Temporal answered and refused who we are (an API key it does not take, one without access to the namespace).
    return {
      message: `Temporal refused the credentials (${code === 16 ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED'}: ${grpcDetailsOf(err)}): check TEMPORAL_API_KEY or the profile's api_key, and the namespace`,
      exitCode: ExitCode.unreachable,
    };
  }
  if (err instanceof Error && err.name === 'NamespaceNotFoundError') {
    // The client's own error for a namespace the server does not have: a setting to fix, nothing was started.
    const ns = (err as { namespace?: unknown }).namespace;
    return { message: `Temporal has no namespace ${JSON.stringify(ns ?? '?')}: check --namespace, TEMPORAL_NAMESPACE or the profile's namespace`, exitCode: ExitCode.invalidInput };
  }
  if (code === GRPC_FAILED_PRECONDITION) {
    // E.g. an update to a workflow whose first workflow task has not completed: no worker has
    // run it yet (none is polling, or the one that took it crashed and the task timed out).
    return {
      message: `Temporal refused the request: ${grpcDetailsOf(err)} (the workflow has not been run by a worker yet: is \`rollout worker\` or \`rollout dev\` running against this Temporal and task queue? It goes on once one is)`,
      exitCode: ExitCode.failed,
    };
  }
  if (code !== undefined) return { message: `Temporal refused the request: ${grpcDetailsOf(err)}`, exitCode: ExitCode.failed };
  const stack = process.env.ROLLOUT_DEBUG === '1' && err instanceof Error ? err.stack : undefined;
  return { message: stack ?? `${text} (set ROLLOUT_DEBUG=1 for the stack trace)`, exitCode: ExitCode.failed };
}
