/**
 * `rollout status <service> [--output json] [--watch]`: the serving version, the endpoint, the
 * traffic split and every replica; during a rollout, the rollout's live view. `--watch`: see
 * watch-status.ts.
 */
import type { Client } from '@temporalio/client';
import { rolloutStatusQuery } from '../../workflows/messages';
import type { ReplicaRecord, RolloutStatus, ServiceStatus } from '../../workflows/types';
import { connectClient, servingUiUrl, temporalTarget, workflowUiLink, type ConnectionFlags } from '../connection';
import { ExitCode } from '../errors';
import { describeCanary } from '../progress';
import { serviceStatus } from '../service-handle';
import { serviceArgument } from '../service-name';
import { renderTable } from '../table';
import { describeWaiting, waitingOn, type WaitingOn } from '../waiting';

export interface StatusView {
  name: string;
  version: number;
  endpoint?: string;
  traffic: Record<string, number>;
  replicas: ReplicaRecord[];
  rollout?: RolloutStatus;
  lastRollout?: ServiceStatus['lastRollout'];
  /** Self-healing: replacements so far and the last loss. */
  healing?: ServiceStatus['healing'];
  /** Activities being retried after failing (no EC2 capacity, throttling…): what the rollout, or the healing service, waits for. */
  waiting: WaitingOn[];
}

export interface StatusOptions {
  output?: 'text' | 'json';
  /** Keep watching: redraw (terminal) or print a line / JSON object per change. */
  watch?: boolean;
  connection?: ConnectionFlags;
}

export async function statusCommand(serviceArg: string, opts: StatusOptions): Promise<number> {
  const service = serviceArgument(serviceArg);
  const target = temporalTarget(opts.connection);
  const { client, close } = await connectClient(target);
  try {
    if (opts.watch) return await (await import('../watch-status')).watchStatus(client, target, service, opts.output ?? 'text');
    const view = await loadStatusView(client, service);
    if (opts.output === 'json') process.stdout.write(JSON.stringify(view, null, 2) + '\n');
    else {
      const ui = view.rollout ? await servingUiUrl(target) : undefined;
      process.stdout.write(renderStatus(view, view.rollout && ui ? workflowUiLink(ui, target, view.rollout.workflowId) : undefined));
    }
    return ExitCode.ok;
  } finally {
    await close();
  }
}

/** The service's status, its active rollout's live view and what either waits for (see `StatusView`). */
export async function loadStatusView(client: Client, service: string): Promise<StatusView> {
  const { status, handle } = await serviceStatus(client, service);
  let rollout: RolloutStatus | undefined;
  if (status.activeRollout) {
    try {
      rollout = await client.workflow.getHandle(status.activeRollout.workflowId).query(rolloutStatusQuery);
    } catch {
      rollout = undefined; // just finished: the service view is current
    }
  }
  const waiting = await waitingOn(status.activeRollout ? client.workflow.getHandle(status.activeRollout.workflowId) : handle);
  return {
    name: status.name,
    version: status.version,
    endpoint: rollout?.endpoint ?? status.endpoint,
    traffic: rollout?.traffic ?? status.traffic,
    replicas: rollout?.replicas ?? status.replicas,
    rollout,
    lastRollout: status.lastRollout,
    healing: status.healing,
    waiting,
  };
}

export function renderStatus(view: StatusView, rolloutLink?: string): string {
  const lines: string[] = [];
  lines.push(`service   ${view.name}`);
  lines.push(`version   ${view.version === 0 ? '(none serving yet)' : `v${view.version}`}`);
  lines.push(`endpoint  ${view.endpoint ?? '(none yet)'}`);
  const traffic = Object.entries(view.traffic).map(([v, p]) => `v${v} ${p}%`);
  lines.push(`traffic   ${traffic.join(', ') || 'none'}`);
  if (view.rollout) {
    const versions = view.rollout.fromVersion === 0 ? `first deploy → v${view.rollout.toVersion}` : `v${view.rollout.fromVersion} → v${view.rollout.toVersion}`;
    lines.push(`rollout   ${versions}: ${view.rollout.phase} · ${view.rollout.note}`);
    const canary = describeCanary(view.rollout);
    if (canary) lines.push(`canary    ${canary}`);
    if (view.rollout.analysis?.last) {
      const a = view.rollout.analysis;
      lines.push(`analysis  ${a.passed} passed, ${a.failed} failed (rollback above ${a.failureLimit}); last ${a.last?.verdict}: ${a.last?.reasons.join('; ')}`);
    }
    if (view.rollout.refused.length) lines.push(`refused   ${view.rollout.refused[view.rollout.refused.length - 1]}`);
    if (view.rollout.reason) lines.push(`reason    ${view.rollout.reason}`);
    if (rolloutLink) lines.push(`history   ${rolloutLink}`);
  } else if (view.lastRollout) {
    const last = view.lastRollout;
    lines.push(`last      v${last.version} ${last.outcome}${last.reason ? `: ${last.reason}` : ''}`);
  }
  for (const w of view.waiting) lines.push(`waiting   ${describeWaiting(w)}`);
  if (view.healing) {
    const h = view.healing;
    const when = h.lastLostAt ? ` at ${new Date(h.lastLostAt).toISOString()}` : '';
    lines.push(`healing   ${h.replaced} replica(s) replaced${h.lastLost ? `; last lost${when}: ${h.lastLost}` : ''}`);
  }
  lines.push('');
  const rows = [
    ['REPLICA', 'VERSION', 'STATUS', 'ENDPOINT', 'ERROR'],
    // A lost replica keeps its error while it shuts down (FAILED, then SHUTTING_DOWN).
    ...view.replicas.map((r) => [r.id, `v${r.version}`, r.status, r.endpoint ?? '-', r.status === 'FAILED' || r.status === 'SHUTTING_DOWN' ? (r.message ?? '') : '']),
  ];
  lines.push(...renderTable(rows));
  return lines.join('\n') + '\n';
}
