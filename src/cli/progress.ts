import { describeStep } from '../plan/steps';
import type { ReplicaRecord, RolloutStatus } from '../workflows/types';

/** "rolling_out · traffic v1 50% v2 50% · v1 READY×1, v2 READY×1 STARTING×1 · waiting for …" */
export function describeProgress(status: RolloutStatus): string {
  const traffic = Object.entries(status.traffic)
    .map(([v, pct]) => `v${v} ${pct}%`)
    .join(' ');
  const parts = [status.phase, `traffic ${traffic || 'none'}`];
  const canary = describeCanary(status);
  if (canary) parts.push(canary);
  if (status.analysis) {
    const a = status.analysis;
    parts.push(`analysis ${a.passed} passed, ${a.failed} failed (limit ${a.failureLimit})${a.last ? `, last ${a.last.verdict}` : ''}`);
  }
  return [...parts, summarizeReplicas(status.replicas), status.note].join(' · ');
}

/** "canary held at 30% (manual: no timeout rollback)" or "step 3/5 weight 50%". */
export function describeCanary(status: RolloutStatus): string | undefined {
  if (status.mode === 'manual') return `canary held at ${status.targetPercent ?? 0}% (manual: no timeout rollback)`;
  if (status.mode !== 'steps' || !status.steps || status.stepIndex === undefined) return undefined;
  if (status.phase !== 'rolling_out' && status.phase !== 'paused') return undefined; // rolling back: the steps no longer apply
  const step = status.steps[status.stepIndex];
  return `step ${status.stepIndex + 1}/${status.steps.length} ${step ? describeStep(step) : ''}`.trimEnd();
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
