/**
 * `rollout list [-o json]`: every service (its running `service-<name>` workflow, found through
 * the visibility API) with its version, status, ready/total replicas, active rollout and endpoint.
 * Each service's status query is made at most CONCURRENCY at a time and bounded in time; a service
 * whose query fails is listed with the error, and the list still exits 0.
 */
import type { Client } from '@temporalio/client';
import { rolloutStatusQuery, serviceStatusQuery } from '../../workflows/messages';
import type { RolloutStatus, ServiceStatus } from '../../workflows/types';
import { serviceWorkflowId } from '../../workflows/types';
import { answerWithin, mapBounded, QueryTimeout } from '../bounded';
import { connectClient, temporalTarget, type ConnectionFlags } from '../connection';
import { ExitCode } from '../errors';
import { describeFailure } from '../failure-text';
import { renderTable } from '../table';
import { runningServices } from '../visibility';

/** Status queries in flight at once: a fleet of hundreds is listed without a burst of hundreds of queries. */
const CONCURRENCY = 8;
/** A query no worker answers (workers down) would otherwise hold the whole list. */
const QUERY_TIMEOUT_MS = 10_000;

export interface ListEntry {
  name: string;
  version: number;
  /** serving, degraded (fewer READY replicas than the spec asks), no version (nothing serving yet), the active rollout's phase, or error. */
  status: string;
  replicas: { ready: number; total: number; desired?: number };
  rollout?: { workflowId: string; version: number; phase?: string; canaryPercent?: number };
  endpoint?: string;
  /** Why this service's status could not be read. */
  error?: string;
}

export async function listCommand(opts: { output?: 'text' | 'json'; connection?: ConnectionFlags }): Promise<number> {
  const target = temporalTarget(opts.connection);
  const { client, close } = await connectClient(target);
  try {
    const names = await runningServices(client);
    const entries = await mapBounded(names, CONCURRENCY, (name) => listEntry(client, name));
    if (opts.output === 'json') process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
    else if (entries.length === 0) process.stdout.write(`no services in namespace ${target.namespace} (deploy one with \`rollout deploy <spec.yaml>\`)\n`);
    else process.stdout.write(renderList(entries));
    return ExitCode.ok;
  } finally {
    await close();
  }
}

async function listEntry(client: Client, name: string): Promise<ListEntry> {
  try {
    const status = await answerWithin(client, QUERY_TIMEOUT_MS, () => client.workflow.getHandle(serviceWorkflowId(name)).query(serviceStatusQuery), 'the status query');
    let rollout: RolloutStatus | undefined;
    if (status.activeRollout) {
      const id = status.activeRollout.workflowId;
      rollout = await answerWithin(client, QUERY_TIMEOUT_MS, () => client.workflow.getHandle(id).query(rolloutStatusQuery), "the rollout's status query").catch(() => undefined);
    }
    return entryOf(status, rollout);
  } catch (err) {
    return { name, version: 0, status: 'error', replicas: { ready: 0, total: 0 }, error: err instanceof QueryTimeout ? err.message : describeFailure(err).message };
  }
}

/** A service's row from its status and its active rollout's (pure: table-tested). */
export function entryOf(status: ServiceStatus, rollout?: RolloutStatus): ListEntry {
  const replicas = rollout?.replicas ?? status.replicas;
  const ready = replicas.filter((r) => r.status === 'READY').length;
  const desired = status.spec?.replicas;
  const serving = status.version === 0 ? 'no version' : desired !== undefined && replicas.filter((r) => r.status === 'READY' && r.version === status.version).length < desired ? 'degraded' : 'serving';
  return {
    name: status.name,
    version: status.version,
    status: status.activeRollout ? (rollout?.phase ?? 'rolling out') : serving,
    replicas: { ready, total: replicas.length, ...(desired !== undefined ? { desired } : {}) },
    ...(status.activeRollout
      ? { rollout: { workflowId: status.activeRollout.workflowId, version: status.activeRollout.version, ...(rollout ? { phase: rollout.phase, canaryPercent: rollout.canaryPercent } : {}) } }
      : {}),
    ...((rollout?.endpoint ?? status.endpoint) ? { endpoint: rollout?.endpoint ?? status.endpoint } : {}),
  };
}

export function renderList(entries: readonly ListEntry[]): string {
  const rows = [
    ['NAME', 'VERSION', 'STATUS', 'READY', 'ROLLOUT', 'ENDPOINT'],
    ...entries.map((e) => [
      e.name,
      e.error ? '-' : e.version === 0 ? '-' : `v${e.version}`,
      e.status,
      e.error ? '-' : `${e.replicas.ready}/${e.replicas.total}`,
      e.rollout ? `${e.rollout.workflowId} ${e.rollout.phase ?? ''}${e.rollout.phase && e.rollout.canaryPercent !== undefined ? ` ${e.rollout.canaryPercent}%` : ''}`.trimEnd() : '-',
      e.endpoint ?? '-',
    ]),
  ];
  const errors = entries.filter((e) => e.error).map((e) => `${e.name}: ${e.error}`);
  return [...renderTable(rows), ...(errors.length ? ['', ...errors] : [])].join('\n') + '\n';
}
