/**
 * How the CLI tells a Temporal that could not be reached (exit code 3) from one that answered
 * and refused (exit code 1). No SDK import: `rollout router` stays light.
 */

import { GRPC_NO_ANSWER, grpcCodeOf } from '../temporal/grpc-status';

export { GRPC_CREDENTIALS_REFUSED, GRPC_FAILED_PRECONDITION, grpcCodeOf, grpcDetailsOf } from '../temporal/grpc-status';

/** Whether an error means Temporal could not be reached (exit code 3). */
export function isUnreachable(err: unknown): boolean {
  const code = grpcCodeOf(err);
  if (code !== undefined) return GRPC_NO_ANSWER.has(code);
  const text = err instanceof Error ? `${err.name} ${err.message}` : String(err);
  return /\bUNAVAILABLE\b|ECONNREFUSED|ECONNRESET|EHOSTUNREACH|DEADLINE_EXCEEDED/.test(text);
}
