import type { ServiceSpec } from './types';

/** Dotted paths of the fields that differ between two specs, sorted: `["env.X", "replicas"]`. */
export function specChanges(a: ServiceSpec, b: ServiceSpec): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, path: string): void => {
    const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
    if (isObject(x) && isObject(y)) {
      for (const key of new Set([...Object.keys(x), ...Object.keys(y)])) walk(x[key], y[key], path ? `${path}.${key}` : key);
    } else if (JSON.stringify(x) !== JSON.stringify(y)) out.push(path);
  };
  walk(a, b, '');
  return out.sort();
}

/** Fields whose change needs no new replica: the running ones already are what the spec asks for. */
const IN_PLACE_FIELDS = ['replicas', 'rollout', 'readiness_probe'];

export type DeployMode = 'rollout' | 'in_place' | 'unchanged';

export interface DeployDecision {
  mode: DeployMode;
  /** Dotted paths of the fields that changed. */
  changes: string[];
  /** Why this mode, in one line (shown by `rollout deploy` and `rollout plan`). */
  reason: string;
}

/**
 * Roll out or apply in place (dstack: changes that only touch scaling need no new replicas).
 *
 *   no serving spec                        → rollout   "first deploy"
 *   env.MODEL_VERSION changed              → rollout   "env.MODEL_VERSION needs new replicas"
 *   replicas 2 → 3, rollout.timeout        → in_place  "only replicas, rollout.timeout changed: …"
 *   nothing changed                        → unchanged (force → rollout)
 */
export function decideDeploy(serving: ServiceSpec | undefined, next: ServiceSpec, force = false): DeployDecision {
  if (!serving) return { mode: 'rollout', changes: [], reason: 'first deploy' };
  const changes = specChanges(serving, next);
  if (force) return { mode: 'rollout', changes, reason: '--force: every replica is replaced' };
  if (changes.length === 0) return { mode: 'unchanged', changes, reason: 'the spec equals the serving one; --force rolls it out anyway' };
  const restart = changes.filter((c) => !IN_PLACE_FIELDS.some((f) => c === f || c.startsWith(`${f}.`)));
  if (restart.length > 0) return { mode: 'rollout', changes, reason: `${restart.join(', ')} changed: new replicas needed` };
  return { mode: 'in_place', changes, reason: `only ${changes.join(', ')} changed: applied in place, nothing restarted` };
}

/** A replica as the service records it, for `decideServiceDeploy`. */
export interface RecordedReplica {
  id: string;
  version: number;
  status: string;
}

/**
 * `decideDeploy` for a running service: a failed rollout can leave replicas of another version
 * or not READY (a rollback that did not complete), and then only a rollout that replaces every
 * replica makes the service whole again, whatever the spec diff says.
 *
 *   serving v3, replicas [v3 READY, v4 READY], same spec → rollout "the last rollout left …"
 */
export function decideServiceDeploy(
  serving: { spec?: ServiceSpec; version: number; replicas: RecordedReplica[] },
  next: ServiceSpec,
  force = false,
): DeployDecision {
  const decision = decideDeploy(serving.spec, next, force);
  const stray = serving.replicas.filter((r) => r.version !== serving.version || r.status !== 'READY');
  if (decision.mode === 'rollout' || stray.length === 0) return decision;
  return {
    mode: 'rollout',
    changes: decision.changes,
    reason: `the last rollout left ${stray.map((r) => `${r.id} (v${r.version} ${r.status})`).join(', ')}: every replica is replaced`,
  };
}
