/**
 * `rollout gc <service> [--dry-run] [--output json]`: finds the replicas the providers hold for a
 * service that none of its versions owns (an EC2 instance tagged for it that no replica record
 * names: a leak from a crash, a terminated rollout workflow, a hand-made launch) and terminates
 * them. A running service answers its own `gc` update (it knows what it owns, and refuses during
 * a rollout); a service with no running workflow gets a `gc-<service>` workflow, for which
 * nothing is owned. The worker does the listing and terminating: the CLI needs no cloud
 * credentials.
 */
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError, WorkflowFailedError, WorkflowUpdateFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { GC_START_WITHIN_MS } from '../../workflows/gc-limits';
import { gcUpdate } from '../../workflows/messages';
import { GC_FAILED, gcWorkflowId, serviceWorkflowId, TASK_QUEUE, type GcResult } from '../../workflows/types';
import { connectClient, temporalTarget, type ConnectionFlags } from '../connection';
import { CliError, ExitCode } from '../errors';
import { serviceRunning } from '../service-handle';
import { serviceArgument } from '../service-name';

export interface GcOptions {
  dryRun?: boolean;
  output?: 'text' | 'json';
  /** The global connection flags (`rollout --profile cloud gc llm`). */
  connection?: ConnectionFlags;
}

export async function gcCommand(serviceArg: string, opts: GcOptions): Promise<number> {
  const service = serviceArgument(serviceArg);
  const input = { dryRun: opts.dryRun === true };
  const { client, close } = await connectClient(temporalTarget(opts.connection));
  try {
    // Asked first: a namespace Temporal lacks fails here, before anything is said.
    const running = await serviceRunning(client, service);
    if (!opts.output || opts.output === 'text') process.stderr.write(`${input.dryRun ? 'looking for' : 'collecting'} ${service}'s stray replicas on the worker's providers…\n`);
    // A worker does the work: if it takes long, say what it may be waiting for.
    const slowHint = setTimeout(() => process.stderr.write(`still waiting: for a worker on task queue ${TASK_QUEUE} (is \`rollout dev\` or \`rollout worker\` running?), or for the provider's answers\n`), 15_000);
    let result: GcResult;
    try {
      result = running ? await viaService(client, service, input) : await viaGcWorkflow(client, service, input);
    } finally {
      clearTimeout(slowHint);
    }
    process.stdout.write(opts.output === 'json' ? JSON.stringify(result, null, 2) + '\n' : renderGc(result));
    return ExitCode.ok;
  } finally {
    await close();
  }
}

async function viaService(client: Client, service: string, input: { dryRun: boolean }): Promise<GcResult> {
  try {
    return await client.workflow.getHandle(serviceWorkflowId(service)).executeUpdate(gcUpdate, { args: [input] });
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError) {
      const why = err.cause instanceof Error ? err.cause.message : err.message;
      // A provider could not list or terminate: the gc ran and failed (exit 1).
      if (err.cause instanceof ApplicationFailure && err.cause.type === GC_FAILED) throw new CliError(why, ExitCode.failed);
      // Refused (a rollout in progress): nothing done, the caller should try later.
      throw new CliError(`gc refused by ${serviceWorkflowId(service)}: ${why}`, ExitCode.invalidInput);
    }
    throw err;
  }
}

async function viaGcWorkflow(client: Client, service: string, input: { dryRun: boolean }): Promise<GcResult> {
  const workflowId = gcWorkflowId(service);
  let handle;
  try {
    handle = await client.workflow.start('gcWorkflow', {
      workflowId,
      taskQueue: TASK_QUEUE,
      args: [service, input],
      staticSummary: `gc ${service}${input.dryRun ? ' (dry run)' : ''}`,
      // Bounded: a gc is never left pending for a worker that may come much later.
      workflowExecutionTimeout: '30 minutes',
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) throw new CliError(`a gc of ${service} is already running (${workflowId}); wait for it to end, then run gc again`, ExitCode.invalidInput);
    throw err;
  }
  const result = handle.result() as Promise<GcResult>;
  result.catch(() => undefined); // read below; a give-up must not leave it unhandled
  const gaveUp = await Promise.race([result.then(() => false, () => false), new Promise<boolean>((r) => setTimeout(() => r(true), GC_START_WITHIN_MS).unref())]);
  if (gaveUp && !(await pickedUp(handle))) {
    // Nothing has run: ended here, so that it cannot act later when a worker comes.
    await handle.terminate('no worker picked the gc up; the CLI gave up').catch(() => undefined);
    throw new CliError(`no worker on task queue ${TASK_QUEUE} picked the gc up within ${GC_START_WITHIN_MS / 1000} s (is \`rollout dev\` or \`rollout worker\` running?); nothing was done`, ExitCode.unreachable);
  }
  try {
    return await result;
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure && err.cause.type === GC_FAILED) throw new CliError(err.cause.message, ExitCode.failed);
    throw err;
  }
}

/** Whether a worker has taken the workflow's first task (its history has more than the start and the task scheduled). */
async function pickedUp(handle: WorkflowHandle): Promise<boolean> {
  const d = await handle.describe();
  return d.status.name !== 'RUNNING' || d.historyLength > 2;
}

export function renderGc(result: GcResult): string {
  const lines: string[] = [];
  if (result.strays.length === 0) lines.push(`no stray replicas of ${result.service}`);
  else {
    const rows = [['REPLICA', 'VERSION', 'PROVIDER', 'STATE', 'ID'], ...result.strays.map((s) => [s.replicaId || '(no replica tag)', s.version === null ? '-' : `v${s.version}`, s.provider, s.state, s.externalId])];
    const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
    for (const row of rows) lines.push(row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd());
    lines.push('');
    if (result.dryRun) lines.push(`dry run: ${result.strays.length} stray replica(s) would be terminated; run without --dry-run to terminate them`);
    else if (result.terminated.length) lines.push(`terminated ${result.terminated.length} stray replica(s)`);
  }
  if (result.note) lines.push(result.note);
  return lines.join('\n') + '\n';
}
