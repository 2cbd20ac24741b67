/**
 * Tells the worker's `rollout_replicas{provider,state}` gauge the states of the replicas this
 * workflow owns (READY, STARTING, …, as `rollout status` shows them), through the metrics sink:
 * no command in the history, so every recorded history replays as it ran.
 *
 * Who reports a service's replicas: its rollout while one runs (it owns them then), the service
 * workflow the rest of the time. The service clears its report when it hands its replicas to a
 * rollout, a rollout clears its own when it ends (or continues as new), and the service reports
 * what it got back. The worker keeps the latest report per service, so the two never count twice.
 *
 * Sink calls are not made during replay: a worker that replays a workflow (a restart, a sticky
 * cache eviction) has not heard its report. So nothing counts as sent while replaying, and the
 * first report call of a live activation sends the current state even when it did not change.
 * Workflow code: deterministic, no I/O (a sink call and `isReplayingHistoryEvents` add no command).
 */
import { workflowInfo } from '@temporalio/workflow';
import type { ReplicaStatus } from '../plan/types';
import { rolloutMetrics, type ReplicaStateReport } from './metrics-sink';

export class ReplicaStateReporter {
  /** What this workflow run last told the worker, as a key; undefined = nothing yet, in this context. */
  private lastSent: string | undefined;

  constructor(private readonly service: string) {}

  /** The replicas this workflow owns now; sent when they changed, or when not sent live yet. */
  report(replicas: Array<{ id: string; status: ReplicaStatus; provider: string }>): void {
    this.send(replicas.map((r) => ({ replicaId: r.id, provider: r.provider, state: r.status })));
  }

  /** This workflow owns no replicas any more (it handed them over, ended, or continues as new). */
  clear(): void {
    this.send([]);
  }

  private send(states: ReplicaStateReport[]): void {
    if (workflowInfo().unsafe.isReplayingHistoryEvents) return;
    const key = JSON.stringify(states);
    if (key === this.lastSent) return;
    this.lastSent = key;
    rolloutMetrics.replicaStates(this.service, states);
  }
}
