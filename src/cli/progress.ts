import type { ReplicaRecord, RolloutStatus } from '../workflows/types';

/** "rolling_out · traffic v1 50% v2 50% · v1 READY×1, v2 READY×1 STARTING×1 · waiting for …" */
export function describeProgress(status: RolloutStatus): string {
  const traffic = Object.entries(status.traffic)
    .map(([v, pct]) => `v${v} ${pct}%`)
    .join(' ');
  return [status.phase, `traffic ${traffic || 'none'}`, summarizeReplicas(status.replicas), status.note].join(' · ');
}

export function summarizeReplicas(replicas: ReplicaRecord[]): string {
  const byVersion = new Map<number, Map<string, number>>();
  for (const r of replicas) {
    const counts = byVersion.get(r.version) ?? new Map<string, number>();
    counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    byVersion.set(r.version, counts);
  }
  if (byVersion.size === 0) return 'no replicas';
  return [...byVersion.entries()]
    .sort(([a], [b]) => a - b)
    .map(([v, counts]) => `v${v} ${[...counts.entries()].map(([s, n]) => `${s}×${n}`).join(' ')}`)
    .join(', ');
}
