/**
 * `rollout pause|resume|advance|promote|rollback <service>` and `rollout set-canary <service> <percent>`:
 * the `control` update on the service's active rollout. The rollout validates it first, so a
 * request that makes no sense now (150%, advance while rolling back) is refused with its
 * reason, exit 2, and changes nothing; an accepted one answers with the rollout's new state.
 */
import { ROLLBACK_REASON_MAX } from '../../workflows/rollout-control';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { controlUpdate } from '../../workflows/messages';
import { CONTROL_COMMAND_NAMES, type ControlAction, type ControlRequest, type RolloutStatus } from '../../workflows/types';
import { connectClient, temporalTarget, type ConnectionFlags } from '../connection';
import { CliError, ExitCode } from '../errors';
import { describeProgress } from '../progress';
import { serviceStatus } from '../service-handle';
import { serviceArgument } from '../service-name';

export type { ControlAction };

export interface ControlOptions {
  reason?: string;
  percent?: string;
  output?: 'text' | 'json';
  /** The global connection flags (`rollout --profile cloud pause llm`). */
  connection?: ConnectionFlags;
}

/** The longest `rollback --reason` (characters): it is stored in the rollout's history and shown by `status`. */
export { ROLLBACK_REASON_MAX };

export async function controlCommand(action: ControlAction, serviceArg: string, opts: ControlOptions): Promise<number> {
  // Every argument is checked before anything is contacted: bad input is exit 2 and sends nothing.
  const service = serviceArgument(serviceArg);
  const request: ControlRequest = { action };
  if (action === 'rollback' && opts.reason) request.reason = reasonOption(opts.reason);
  if (action === 'setCanaryPercent') request.percent = parsePercent(opts.percent ?? '');
  const { client, close } = await connectClient(temporalTarget(opts.connection));
  try {
    const { status } = await serviceStatus(client, service);
    if (!status.activeRollout) {
      // A request that makes no sense now (the rollout finished, or none was started): refused, exit 2.
      throw new CliError(`${service} has no rollout in progress (serving v${status.version}); nothing to ${CONTROL_COMMAND_NAMES[action]}`, ExitCode.invalidInput);
    }
    let after: RolloutStatus;
    try {
      after = await client.workflow.getHandle(status.activeRollout.workflowId).executeUpdate(controlUpdate, { args: [request] });
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        const why = err.cause instanceof Error ? err.cause.message : err.message;
        throw new CliError(`${CONTROL_COMMAND_NAMES[action]} refused by ${status.activeRollout.workflowId}: ${why}`, ExitCode.invalidInput);
      }
      throw err;
    }
    if (opts.output === 'json') process.stdout.write(JSON.stringify(after, null, 2) + '\n');
    else process.stderr.write(`${describeAction(request)} → ${after.workflowId}\n  ${describeProgress(after)}\n`);
    return ExitCode.ok;
  } finally {
    await close();
  }
}

function describeAction(req: ControlRequest): string {
  if (req.action === 'setCanaryPercent') return `canary held at ${req.percent}% (manual mode: no timeout rollback until resume, advance or promote)`;
  return `${CONTROL_COMMAND_NAMES[req.action]} accepted`;
}

/** `--reason`: at most ROLLBACK_REASON_MAX characters; longer is invalid input (exit 2), not cut. */
export function reasonOption(text: string): string {
  const length = [...text].length;
  if (length > ROLLBACK_REASON_MAX) {
    throw new CliError(`--reason: expected at most ${ROLLBACK_REASON_MAX} characters, got ${length}`, ExitCode.invalidInput);
  }
  return text;
}

/**
 * A whole percent from 0 to 100, in decimal digits (`30` or `30%`); anything else is invalid
 * input (exit 2) before anything is sent. Number() alone would take `1e1` as 10 and `0x20` as 32.
 */
export function parsePercent(text: string): number {
  const match = /^\s*(\d{1,3})%?\s*$/.exec(String(text));
  const n = match ? Number(match[1]) : Number.NaN;
  if (!match || n > 100) {
    throw new CliError(`expected a whole percent from 0 to 100 in decimal digits (e.g. 30 or 30%), got ${JSON.stringify(text)}`, ExitCode.invalidInput);
  }
  return n;
}
