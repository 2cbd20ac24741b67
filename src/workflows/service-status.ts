import type { ServiceState, ServiceStatus } from './types';

/** The `status` answer, derived from the state alone (no side effects in getters). */
export function serviceStatusOf(state: ServiceState): ServiceStatus {
  const ready = state.replicas.filter((r) => r.status === 'READY');
  const traffic: Record<string, number> = {};
  for (const r of ready) traffic[r.version] = (traffic[r.version] ?? 0) + 1;
  for (const v of Object.keys(traffic)) traffic[v] = Math.round((traffic[v] * 100) / ready.length);
  return {
    name: state.name,
    version: state.version,
    nextVersion: state.nextVersion,
    spec: state.spec,
    endpoint: state.endpoint,
    replicas: state.replicas,
    traffic,
    activeRollout: state.activeRollout,
    lastRollout: state.history[state.history.length - 1],
    healing: state.healing,
  };
}
