/**
 * gRPC status codes in the errors the Temporal SDK throws (it wraps them: the code sits on the
 * error or one of its causes). No SDK import: `rollout router` stays light.
 */

/** DEADLINE_EXCEEDED, UNAVAILABLE: no answer. */
export const GRPC_NO_ANSWER = new Set([4, 14]);
/** PERMISSION_DENIED, UNAUTHENTICATED: the server answered, and refused our credentials. */
export const GRPC_CREDENTIALS_REFUSED = new Set([7, 16]);
export const GRPC_UNAUTHENTICATED = 16;
/** FAILED_PRECONDITION: the server answered, and the workflow is not in a state to take it. */
export const GRPC_FAILED_PRECONDITION = 9;

/** The gRPC status code of an error or of one of its causes, if any. */
export function grpcCodeOf(err: unknown): number | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, details } = e as { code?: unknown; details?: unknown };
    if (typeof code === 'number' && typeof details === 'string') return code;
  }
  return undefined;
}

/** The server's own words for a gRPC error (its `details`), else the message. */
export function grpcDetailsOf(err: unknown): string {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, details } = e as { code?: unknown; details?: unknown };
    if (typeof code === 'number' && typeof details === 'string' && details) return details;
  }
  return err instanceof Error ? err.message : String(err);
}
