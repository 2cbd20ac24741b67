/**
 * A spec value (parsed YAML, or a deploy update's payload) checked against the schema: the spec,
 * or every issue with its field path. Pure (no I/O): the service workflow's deploy validator
 * uses it too, so a deploy sent around the CLI (`temporal workflow update execute`) is refused
 * with the same messages.
 */
import type { z } from 'zod';
import { serviceSpecSchema } from './schema';
import { showValue } from './show-value';
import type { ServiceSpec, SpecIssue } from './types';

export type SpecResult = { ok: true; spec: ServiceSpec } | { ok: false; issues: SpecIssue[] };

export function validateSpec(value: unknown): SpecResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, issues: [{ path: '(root)', message: `expected a mapping of fields (name, replicas, run, …), got ${showValue(value ?? null)}` }] };
  }
  // A key the object model treats specially would silently vanish from the spec: refuse it.
  const env = (value as { env?: unknown }).env;
  if (env && typeof env === 'object' && Object.prototype.hasOwnProperty.call(env, '__proto__')) {
    return { ok: false, issues: [{ path: 'env.__proto__', message: 'expected an environment variable name (letters, digits and "_", not starting with a digit), got "__proto__"' }] };
  }
  const parsed = serviceSpecSchema.safeParse(value);
  if (parsed.success) return { ok: true, spec: parsed.data };
  return { ok: false, issues: parsed.error.issues.flatMap(toIssues) };
}

function toIssues(issue: z.core.$ZodIssue): SpecIssue[] {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: path ? `${path}.${key}` : key, message: 'unknown field' }));
  }
  if (issue.code === 'invalid_key') {
    // A record key refused by its own schema: its message, not zod's generic "Invalid key in record".
    return [{ path: path || '(root)', message: issue.issues[0]?.message ?? issue.message }];
  }
  return [{ path: path || '(root)', message: issue.message }];
}
