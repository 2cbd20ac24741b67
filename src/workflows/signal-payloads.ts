/**
 * What the service workflow forwards of a control signal's payload to its rollout: what the
 * rollout can use and nothing more. A signal sent around the CLI may carry megabytes; its payload
 * is already in the service's history once (the signal event), and forwarding it as it came
 * would write it a second time. Workflow code: pure.
 */
import { reasonText } from './rollout-control';
import type { RollbackInput } from './types';

/** Longest scalar forwarded as it is; the rollout refuses anything longer as a percent anyway. */
const SCALAR_KEPT = 32;

function compactScalar(value: unknown): unknown {
  if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'string' && value.length <= SCALAR_KEPT) return value;
  // Stays junk (no percent parses from it): the rollout records the refusal with this short text.
  const size = typeof value === 'string' ? value.length : (JSON.stringify(value) ?? '').length;
  return `<${typeof value === 'string' ? 'text' : Array.isArray(value) ? 'a list' : typeof value} of ${size} characters>`;
}

/** setCanaryPercent's argument: a number, `{percent}`, or junk made short. */
export function compactPercentArg(arg: unknown): unknown {
  if (typeof arg === 'object' && arg !== null && !Array.isArray(arg) && 'percent' in arg) return { percent: compactScalar((arg as { percent: unknown }).percent) };
  return compactScalar(arg);
}

/** rollback's argument: the reason as the rollout keeps it (clipped, no control characters); a reason that is not text is dropped, as the rollout would. */
export function compactRollbackArg(arg: RollbackInput | undefined): RollbackInput | undefined {
  if (arg === undefined || arg === null) return arg;
  const reason = (arg as { reason?: unknown }).reason;
  return typeof reason === 'string' ? { reason: reasonText(reason) } : {};
}
