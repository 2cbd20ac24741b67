/**
 * `rollout pause|resume|rollback <service>`: signals the service workflow, which forwards
 * the signal to its active rollout.
 */
import { pauseSignal, resumeSignal, rollbackSignal } from '../../workflows/messages';
import { connectClient } from '../connection';
import { CliError, ExitCode } from '../errors';
import { serviceStatus } from '../service-handle';

export type ControlAction = 'pause' | 'resume' | 'rollback';

export async function controlCommand(action: ControlAction, service: string, opts: { reason?: string }): Promise<number> {
  const { client, close } = await connectClient();
  try {
    const { handle, status } = await serviceStatus(client, service);
    if (!status.activeRollout) {
      throw new CliError(`${service} has no rollout in progress (serving v${status.version}); nothing to ${action}`, ExitCode.failed);
    }
    if (action === 'pause') await handle.signal(pauseSignal);
    else if (action === 'resume') await handle.signal(resumeSignal);
    else await handle.signal(rollbackSignal, { reason: opts.reason });
    process.stderr.write(`${action} sent to ${status.activeRollout.workflowId} (v${status.activeRollout.version})\n`);
    return ExitCode.ok;
  } finally {
    await close();
  }
}
