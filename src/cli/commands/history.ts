/**
 * `rollout history <service> [--limit N] [-o json]`: the service's past and running rollouts, from
 * Temporal's visibility API (the `rollout-<service>-v<N>` workflows; see visibility.ts), newest
 * first: version, strategy, outcome, start, duration, why it ended and the Temporal UI link.
 * The why is the rollout's recorded `cause` (rollout-cause.ts), and for a running rollout its live
 * status. It reads the workflows themselves, so it also covers a service whose workflow is gone.
 */
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { rolloutStatusQuery } from '../../workflows/messages';
import type { RolloutCause, RolloutInput, RolloutResult, RolloutStatus } from '../../workflows/types';
import { answerWithin, mapBounded } from '../bounded';
import { connectClient, servingUiUrl, temporalTarget, workflowUiLink, type ConnectionFlags } from '../connection';
import { CliError, ExitCode } from '../errors';
import { causeOf, describeCause } from '../rollout-cause';
import { serviceArgument } from '../service-name';
import { renderTable } from '../table';
import { rolloutsOf, startInput, type RolloutRuns } from '../visibility';

export interface HistoryOptions {
  limit?: string;
  output?: 'text' | 'json';
  connection?: ConnectionFlags;
}

/** At most this many rollouts are read at once (each costs two or three calls). */
const CONCURRENCY = 8;
export const HISTORY_LIMIT_DEFAULT = 20;
/** A running rollout's status query with no worker to answer it must not hold the history. */
const QUERY_TIMEOUT_MS = 10_000;
const HISTORY_LIMIT_MAX = 1000;

export interface HistoryEntry {
  workflowId: string;
  version: number;
  fromVersion?: number;
  strategy?: string;
  /** in_place, or a rollout; manual when it started at a canary percent. */
  mode?: string;
  /** succeeded, rolled_back, failed; running while it runs (then `phase`); terminated, canceled, timed_out when ended from outside. */
  outcome: string;
  phase?: string;
  /** What ended it (or started its rollback), as data. */
  cause?: RolloutCause;
  /** The same, in words: "promoted", "rolled back by a person: …". */
  why: string;
  reason?: string;
  startedAt: string;
  endedAt?: string;
  durationSeconds: number;
  /** Runs of the workflow (more than 1 when a long hold continued as new). */
  runs: number;
  ui?: string;
}

export function parseLimit(text: string | undefined): number {
  if (text === undefined) return HISTORY_LIMIT_DEFAULT;
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1 || Number(text) > HISTORY_LIMIT_MAX) {
    throw new CliError(`--limit: expected a whole number from 1 to ${HISTORY_LIMIT_MAX}, got ${JSON.stringify(text)}`, ExitCode.invalidInput);
  }
  return Number(text);
}

export async function historyCommand(serviceArg: string, opts: HistoryOptions): Promise<number> {
  const service = serviceArgument(serviceArg);
  const limit = parseLimit(opts.limit);
  const target = temporalTarget(opts.connection);
  const { client, close } = await connectClient(target);
  try {
    const ui = servingUiUrl(target);
    const rollouts = (await rolloutsOf(client, service)).slice(0, limit);
    const uiBase = await ui;
    const entries = await mapBounded(rollouts, CONCURRENCY, async (r) => ({
      ...(await historyEntry(client, r)),
      ...(uiBase ? { ui: workflowUiLink(uiBase, target, r.workflowId) } : {}),
    }));
    if (opts.output === 'json') process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
    else if (entries.length === 0) process.stdout.write(`no rollouts of ${service} in namespace ${target.namespace}\n`);
    else process.stdout.write(renderHistory(entries));
    return ExitCode.ok;
  } finally {
    await close();
  }
}

async function historyEntry(client: Client, r: RolloutRuns): Promise<Omit<HistoryEntry, 'ui'>> {
  const first = r.runs[0];
  const last = r.runs[r.runs.length - 1];
  const input = await startInput<RolloutInput>(client, r.workflowId, first.runId).catch(() => undefined);
  const started = first.startTime.getTime();
  const ended = last.closeTime?.getTime();
  const base = {
    workflowId: r.workflowId,
    version: r.version,
    ...(input ? { fromVersion: input.fromVersion, strategy: input.toSpec.rollout.strategy, mode: input.mode === 'in_place' ? 'in_place' : input.canaryPercent !== undefined ? 'manual' : 'rollout' } : {}),
    startedAt: first.startTime.toISOString(),
    ...(ended !== undefined ? { endedAt: new Date(ended).toISOString() } : {}),
    durationSeconds: Math.round(((ended ?? Date.now()) - started) / 1000),
    runs: r.runs.length,
  };
  const handle = client.workflow.getHandle(r.workflowId, last.runId);
  switch (last.status.name) {
    case 'RUNNING': {
      const status = await answerWithin(client, QUERY_TIMEOUT_MS, () => handle.query(rolloutStatusQuery), 'the status query').catch((): RolloutStatus | undefined => undefined);
      const cause = status?.cause ?? (status?.phase === 'rolling_back' ? causeOf(undefined, status.reason, undefined) : undefined);
      const why = status ? (status.phase === 'rolling_back' ? `rolling back: ${describeCause(cause, 'rolled_back').replace(/^rolled back /, '')}` : status.phase) : 'running (no answer to the status query)';
      return { ...base, outcome: 'running', ...(status ? { phase: status.phase } : {}), ...(cause ? { cause } : {}), why, ...(status?.reason ? { reason: status.reason } : {}) };
    }
    case 'COMPLETED': {
      const result = (await handle.result()) as RolloutResult;
      const cause = causeOf(result.outcome, result.reason, result.cause);
      return { ...base, outcome: result.outcome, ...(cause ? { cause } : {}), why: describeCause(cause, result.outcome), ...(result.reason ? { reason: result.reason } : {}) };
    }
    default: {
      // Terminated, cancelled, timed out or failed from outside: no outcome of its own.
      const outcome = last.status.name.toLowerCase();
      let reason: string | undefined;
      try {
        await handle.result();
      } catch (err) {
        if (err instanceof WorkflowFailedError) reason = innermost(err);
      }
      return { ...base, outcome, why: `${outcome} from outside the rollout${reason ? `: ${reason}` : ''}`, ...(reason ? { reason } : {}) };
    }
  }
}

function innermost(err: Error): string {
  let cause: unknown = err;
  while (cause instanceof Error && cause.cause) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}

export function renderHistory(entries: readonly HistoryEntry[]): string {
  const rows = [
    ['VERSION', 'STRATEGY', 'OUTCOME', 'STARTED', 'DURATION', 'UI', 'WHY'],
    ...entries.map((e) => [
      `v${e.fromVersion ? `${e.fromVersion}→` : ''}${e.version}`,
      e.mode === 'in_place' ? 'in_place' : `${e.strategy ?? '?'}${e.mode === 'manual' ? ' (manual)' : ''}`,
      e.outcome === 'running' && e.phase ? `running (${e.phase})` : e.outcome,
      e.startedAt.replace(/\.\d+Z$/, 'Z'),
      `${duration(e.durationSeconds)}${e.endedAt ? '' : '+'}`,
      e.ui ?? '-',
      e.why,
    ]),
  ];
  return renderTable(rows).join('\n') + '\n';
}

/** 45s, 3m05s, 2h01m. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, '0')}m`;
}
