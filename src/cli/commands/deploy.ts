/**
 * `rollout deploy <spec.yaml> [--wait] [--output json]`: validates the spec (exit 2 before
 * touching anything), starts the service workflow if needed and sends it a `deploy` update,
 * then optionally follows the rollout until it ends (exit 0 succeeded, 1 rolled back/failed).
 */
import { WithStartWorkflowOperation, WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import { loadSpecFile, formatIssues } from '../../spec/load';
import { literalSecretsIn } from '../../spec/secrets';
import { deployUpdate, rolloutStatusQuery, serviceStatusQuery } from '../../workflows/messages';
import type { serviceWorkflow } from '../../workflows/service';
import type { RolloutResult } from '../../workflows/types';
import { gcWorkflowId, serviceWorkflowId, TASK_QUEUE } from '../../workflows/types';
import { describeWaiting, waitingOn, type WaitingOn } from '../waiting';
import { LiveRegion } from '../live-region';
import { progressFrame } from '../progress-frame';
import { connectClient, servingUiUrl, temporalTarget, workflowUiLink, type ConnectionFlags } from '../connection';
import { CliError, ExitCode } from '../errors';
import { describeProgress } from '../progress';
import { serviceRunning, workflowRunning } from '../service-handle';
import { parsePercent } from './control';

function percentOption(flag: string, text: string): number {
  try {
    return parsePercent(text);
  } catch (err) {
    throw new CliError(`${flag}: ${(err as Error).message}`, ExitCode.invalidInput);
  }
}

export interface DeployOptions {
  wait?: boolean;
  /** Roll out new replicas even when the change could be applied in place. */
  force?: boolean;
  /** Start in manual mode holding the canary at this percent (string from the command line). */
  canaryPercent?: string;
  output?: 'text' | 'json';
  /** Poll period for progress while waiting. */
  pollMs?: number;
  /** The global connection flags (`rollout --profile cloud deploy spec.yaml`). */
  connection?: ConnectionFlags;
}

export async function deployCommand(specPath: string, opts: DeployOptions): Promise<number> {
  const loaded = await loadSpecFile(specPath);
  if (!loaded.ok) {
    throw new CliError(`invalid spec ${specPath}:\n${formatIssues(loaded.issues)}`, ExitCode.invalidInput);
  }
  const spec = loaded.spec;
  const json = opts.output === 'json';
  for (const name of literalSecretsIn(spec.env)) {
    process.stderr.write(
      `warning: env.${name} is a literal value, stored as is in Temporal's history (readable by anyone who can read the namespace); ` +
        `use {from_env: ${name}} or {from_file: /path} so the worker resolves it at launch\n`,
    );
  }
  const canaryPercent = opts.canaryPercent === undefined ? undefined : percentOption('--canary-percent', opts.canaryPercent);
  const target = temporalTarget(opts.connection);
  const { client, close } = await connectClient(target);
  // Looked for while the deploy runs: the history link is printed only when a UI answers.
  const ui = servingUiUrl(target);
  try {
    const workflowId = serviceWorkflowId(spec.name);
    const running = await serviceRunning(client, spec.name);
    if (!running && (await workflowRunning(client, gcWorkflowId(spec.name)))) {
      // A gc of a service with no workflow terminates every instance tagged with its name: a
      // first deploy now could adopt a leftover that gc is about to terminate.
      throw new CliError(`deploy of ${spec.name} refused: \`rollout gc ${spec.name}\` is cleaning up its leftovers (workflow ${gcWorkflowId(spec.name)}); deploy again when it has finished`, ExitCode.failed);
    }
    if (canaryPercent !== undefined && !running) {
      // Checked here, before anything starts: the update's own refusal would come after the service workflow started.
      throw new CliError(`deploy of ${spec.name} refused: ${spec.name} is not running yet, so a first deploy has no serving version to split traffic with: deploy without --canary-percent`, ExitCode.invalidInput);
    }
    let result;
    // The update is answered by a worker: if none polls, say so instead of hanging silently.
    const noWorkerHint = setTimeout(
      () => process.stderr.write(`still waiting for a worker on task queue ${TASK_QUEUE} (is \`rollout dev\` or \`rollout worker\` running?)\n`),
      15_000,
    );
    try {
      result = await client.workflow.executeUpdateWithStart(deployUpdate, {
        args: [{ spec, force: opts.force, canaryPercent }],
        startWorkflowOperation: new WithStartWorkflowOperation<typeof serviceWorkflow>('serviceWorkflow', {
          workflowId,
          taskQueue: TASK_QUEUE,
          args: [{ name: spec.name }],
          workflowIdConflictPolicy: 'USE_EXISTING',
          staticSummary: `service ${spec.name}`,
        }),
      });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        const cause = err.cause instanceof Error ? err.cause.message : err.message;
        throw new CliError(`deploy of ${spec.name} refused: ${cause}`, ExitCode.invalidInput);
      }
      throw err;
    } finally {
      clearTimeout(noWorkerHint);
    }
    if (!result.rolloutWorkflowId) {
      // Nothing changed: no new version, nothing touched.
      if (json) process.stdout.write(JSON.stringify({ service: spec.name, ...result }, null, 2) + '\n');
      else process.stderr.write(`${spec.name} unchanged at v${result.version}: ${result.reason}\n`);
      return ExitCode.ok;
    }
    const uiBase = await ui;
    const link = uiBase === undefined ? undefined : workflowUiLink(uiBase, target, result.rolloutWorkflowId);
    if (!json) {
      const how = result.mode === 'in_place' ? 'in place' : 'rollout';
      process.stderr.write(`deploying ${spec.name} v${result.version} (${how}: ${result.reason}): workflow ${result.rolloutWorkflowId}\n${link ? `  history: ${link}\n` : ''}`);
      if (canaryPercent !== undefined) {
        process.stderr.write(`  manual mode: the canary holds at ${canaryPercent}% (no timeout rollback) until \`rollout resume|advance|promote|rollback ${spec.name}\`\n`);
      }
    }
    if (!opts.wait) {
      if (json) process.stdout.write(JSON.stringify({ service: spec.name, ...result, ui: link }, null, 2) + '\n');
      return ExitCode.ok;
    }
    const handle = client.workflow.getHandle(result.rolloutWorkflowId);
    const outcome = followRollout(handle, opts.pollMs ?? 1000, json);
    let final: RolloutResult;
    try {
      final = (await handle.result()) as RolloutResult;
    } catch (err) {
      // Terminated or cancelled from outside (the UI, `temporal workflow terminate`): no outcome of
      // its own; the service puts traffic back and cleans up after it.
      if (err instanceof WorkflowFailedError) {
        let cause: unknown = err;
        while (cause instanceof Error && cause.cause) cause = cause.cause;
        throw new CliError(`✘ ${spec.name} v${result.version}: the rollout workflow ${result.rolloutWorkflowId} ended without finishing (${cause instanceof Error ? cause.message : String(cause)}); the service keeps what it served before and removes what the rollout launched`, ExitCode.failed);
      }
      throw err;
    } finally {
      // Whatever the result, the follower stops: a rollout workflow that failed (or was
      // terminated) must end this command, not leave it polling.
      await outcome.stop();
    }
    // Return once the service workflow has recorded the outcome too, so that a `status` or
    // another `deploy` right after this command sees the rollout as finished.
    await serviceSettled(client.workflow.getHandle(workflowId), result.rolloutWorkflowId);
    if (json) {
      process.stdout.write(JSON.stringify({ service: spec.name, ...result, ui: link, ...final }, null, 2) + '\n');
    } else if (final.outcome === 'succeeded') {
      process.stderr.write(`✔ ${spec.name} v${result.version} serves all traffic at ${final.endpoint ?? '(no endpoint)'}\n`);
    } else {
      process.stderr.write(`✘ ${spec.name} v${result.version} ${final.outcome.replace('_', ' ')}: ${final.reason ?? 'no reason given'}\n`);
    }
    return final.outcome === 'succeeded' ? ExitCode.ok : ExitCode.failed;
  } finally {
    await close();
  }
}

/**
 * Follows the rollout on stderr (stdout stays parseable). In a terminal: a live display redrawn
 * in place (progress-frame.ts: phase, traffic split, replicas by version and state, what it waits
 * for). Otherwise (CI): a progress line whenever the rollout's state changes and, every few
 * seconds, what it waits for when an activity is being retried (no EC2 capacity).
 */
function followRollout(handle: WorkflowHandle, pollMs: number, quiet: boolean, live = !quiet && process.stderr.isTTY === true): { stop: () => Promise<void> } {
  let stopped = false;
  let wake: () => void = () => undefined;
  let last = '';
  let lastWaiting = '';
  let waiting: WaitingOn[] = [];
  let polls = 0;
  const started = Date.now();
  const region = live ? new LiveRegion(process.stderr) : undefined;
  const say = (line: string) => process.stderr.write(`[${elapsed(Date.now() - started)}] ${line}\n`);
  const loop = (async () => {
    while (!stopped) {
      try {
        const status = await handle.query(rolloutStatusQuery);
        if (!quiet && polls++ % WAITING_EVERY_POLLS === 0) waiting = await waitingOn(handle);
        if (region) region.draw(progressFrame(status, waiting, Date.now() - started, Date.now()));
        else if (!quiet) {
          const line = describeProgress(status);
          if (line !== last) say(line);
          last = line;
          const waitingLine = waiting.map((w) => describeWaiting({ ...w, nextAttemptAt: undefined })).join('; ');
          if (waitingLine && waitingLine !== lastWaiting) say(`waiting: ${waitingLine}`);
          lastWaiting = waitingLine;
        }
      } catch {
        // The rollout may be finishing; the final result is read separately.
      }
      if (stopped) break;
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, pollMs);
      });
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      wake();
      await loop;
      if (region) {
        // The end state (a closed workflow still answers queries), so the display does not stop a step short.
        const end = await handle.query(rolloutStatusQuery).catch(() => undefined);
        if (end) region.draw(progressFrame(end, [], Date.now() - started, Date.now()));
        region.release();
      }
    },
  };
}

/** How often (in progress polls) `--wait` asks what the rollout waits for: a describe is dearer than a query. */
const WAITING_EVERY_POLLS = 5;

/** Waits (briefly) until the service workflow no longer lists the rollout as active. */
export async function serviceSettled(
  service: { query: (q: typeof serviceStatusQuery) => Promise<{ activeRollout?: { workflowId: string } }> },
  rolloutWorkflowId: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await service.query(serviceStatusQuery)).activeRollout?.workflowId === rolloutWorkflowId && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
}

function elapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
