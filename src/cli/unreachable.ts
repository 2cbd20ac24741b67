/**
 * How the CLI tells a Temporal that could not be reached (exit code 3) from one that answered
 * and refused (exit code 1). No SDK import: `rollout router` stays light.
 */

/** gRPC status codes that mean "no answer": DEADLINE_EXCEEDED, UNAVAILABLE. */
const NO_ANSWER_CODES = new Set([4, 14]);
/** gRPC PERMISSION_DENIED and UNAUTHENTICATED: the server answered, and refused our credentials. */
export const GRPC_CREDENTIALS_REFUSED = new Set([7, 16]);
/** gRPC FAILED_PRECONDITION: the server answered, and the workflow is not in a state to take it. */
export const GRPC_FAILED_PRECONDITION = 9;

/** The gRPC status code of an error or of one of its causes (the SDK wraps them), if any. */
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

/** Whether an error means Temporal could not be reached (exit code 3). */
export function isUnreachable(err: unknown): boolean {
  const code = grpcCodeOf(err);
  if (code !== undefined) return NO_ANSWER_CODES.has(code);
  const text = err instanceof Error ? `${err.name} ${err.message}` : String(err);
  return /\bUNAVAILABLE\b|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|DEADLINE_EXCEEDED/.test(text);
}
