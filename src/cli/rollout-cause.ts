/**
 * Why a rollout ended, for `rollout history`: the structured `cause` the rollout workflow records
 * (src/workflows/types.ts RolloutCause), or, for rollouts recorded before it existed, the same
 * read from the words of its `reason` (which the workflow has always written in these forms).
 */
import type { RolloutCause, RolloutOutcome } from '../workflows/types';

/** The cause as recorded, else as the reason's words tell it; undefined when neither says. */
export function causeOf(outcome: RolloutOutcome | undefined, reason: string | undefined, recorded: RolloutCause | undefined): RolloutCause | undefined {
  if (recorded) return recorded;
  if (outcome === 'succeeded') return { kind: 'promoted' };
  if (!reason) return undefined;
  const manual = /^manual rollback(?:: ([\s\S]*))?$/.exec(reason.split('; the rollback did not complete in time')[0].split('; then ')[0]);
  if (manual) return { kind: 'person', ...(manual[1] ? { personReason: manual[1] } : {}) };
  if (reason.startsWith('timed out after ')) return { kind: 'timeout' };
  if (reason.startsWith('analysis failed')) return { kind: 'analysis' };
  if (reason.startsWith('not enough GPUs')) return { kind: 'gpu_shortfall' };
  // Launch, readiness or a death after READY: the words do not tell them apart.
  const replica = /^replica (\S+) failed: /.exec(reason);
  if (replica) return { kind: 'readiness', replicaId: replica[1] };
  return undefined;
}

/** "promoted", "rolled back by a person: bad latency", "rolled back: timed out" … */
export function describeCause(cause: RolloutCause | undefined, outcome: string): string {
  if (!cause) return outcome.replace('_', ' ');
  const back = outcome === 'failed' ? 'rollback failed, started by' : 'rolled back by';
  switch (cause.kind) {
    case 'promoted':
      return 'promoted';
    case 'person':
      return `${back} a person${cause.personReason ? `: ${cause.personReason}` : ' (no reason given)'}`;
    case 'timeout':
      return `${back} timeout`;
    case 'readiness':
      return `${back} readiness${cause.replicaId ? ` (${cause.replicaId})` : ''}`;
    case 'replica_lost':
      return `${back} a lost replica${cause.replicaId ? ` (${cause.replicaId})` : ''}`;
    case 'analysis':
      return `${back} analysis`;
    case 'gpu_shortfall':
      return `${back} GPU shortfall`;
    case 'activity_failed':
      return 'failed: an activity failed for good';
  }
}
