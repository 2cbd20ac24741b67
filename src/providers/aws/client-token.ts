/**
 * RunInstances' ClientToken (EC2's idempotency key: the same token and parameters return the
 * first call's instance instead of starting another). One token per replica *and* per attempt,
 * since a token reused with other parameters (the next AZ's subnet, the next instance type) is
 * an IdempotentParameterMismatch. Deterministic: a worker retrying after a crash computes the
 * same tokens in the same order. Pure.
 *
 *   clientToken('llm-v2-r3', 'g6.xlarge|subnet-0a|on-demand') → 'llm-v2-r3-3f1c…' (≤ 64 ASCII characters)
 *
 * `generation` (an instance id) is for the rare replica id that is launched again after its
 * instance was terminated: EC2 keeps a token for a while after termination and would answer
 * with the terminated instance, so the next token is salted with that instance's id.
 */
import crypto from 'node:crypto';

/** EC2's limit. */
export const CLIENT_TOKEN_MAX = 64;
const READABLE_PREFIX = 40;

export function clientToken(replicaId: string, attempt: string, generation = ''): string {
  const readable = replicaId.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, READABLE_PREFIX);
  const digest = crypto.createHash('sha256').update(`${replicaId}\n${attempt}\n${generation}`).digest('hex').slice(0, CLIENT_TOKEN_MAX - READABLE_PREFIX - 1);
  return `${readable}-${digest}`;
}
