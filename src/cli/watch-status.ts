/**
 * `rollout status <service> --watch`: the status, polled every second (WATCH_INTERVAL_MS).
 * In a terminal the status is redrawn in place (LiveRegion); without one (a pipe, a log) one line
 * is printed per change, and with `-o json` one JSON object per line per change (NDJSON). Nothing
 * is printed while nothing changes. It ends with exit 0 on Ctrl-C (SIGINT) or SIGTERM, and when
 * the service's workflow ends (said on stderr). Temporal going away meanwhile is said once on
 * stderr and the watch goes on (a server restart does not end it).
 */
import type { Client } from '@temporalio/client';
import { servingUiUrl, workflowUiLink, type TemporalTarget } from './connection';
import { CliError, ExitCode } from './errors';
import { describeFailure } from './failure-text';
import { LiveRegion } from './live-region';
import { summarizeReplicas } from './progress';
import { describeWaiting } from './waiting';
import { loadStatusView, renderStatus, type StatusView } from './commands/status';

/** How often the status is read. A query and two describes: cheap for Temporal, fresh enough for a person. */
export const WATCH_INTERVAL_MS = 1000;

export interface WatchIo {
  out: Pick<NodeJS.WriteStream, 'write' | 'isTTY' | 'columns' | 'rows'> & Partial<Pick<NodeJS.WriteStream, 'on' | 'off'>>;
  err: Pick<NodeJS.WriteStream, 'write'>;
  intervalMs: number;
}

export async function watchStatus(
  client: Client,
  target: TemporalTarget,
  service: string,
  output: 'text' | 'json',
  io: WatchIo = { out: process.stdout, err: process.stderr, intervalMs: WATCH_INTERVAL_MS },
): Promise<number> {
  let stopped = false;
  let wake: () => void = () => undefined;
  const stop = () => {
    stopped = true;
    wake();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  // The reader went away (`rollout status llm --watch | head -1`): end as on Ctrl-C, not with an
  // unhandled EPIPE. Seen at the first write after it left, i.e. at the next change.
  const onOutError = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    stop();
  };
  io.out.on?.('error', onOutError);
  try {
    // The first read fails as `status` does (no such service: exit 1; unreachable: exit 3).
    let view: StatusView | undefined = await loadStatusView(client, service);
    const ui = output === 'text' && io.out.isTTY ? await servingUiUrl(target) : undefined;
    const show = shower(output, io, (v) => (v.rollout && ui ? workflowUiLink(ui, target, v.rollout.workflowId) : undefined));
    let trouble = '';
    while (!stopped) {
      if (view) show(view);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, io.intervalMs);
      });
      if (stopped) break;
      try {
        view = await loadStatusView(client, service);
        if (trouble) io.err.write(`${stamp()} status readable again\n`);
        trouble = '';
      } catch (err) {
        if (err instanceof CliError && err.exitCode === ExitCode.failed) {
          // Not found, or no longer running: nothing left to watch.
          io.err.write(`${stamp()} ${err.message}; stopped watching\n`);
          return ExitCode.ok;
        }
        const why = describeFailure(err).message;
        if (why !== trouble) io.err.write(`${stamp()} cannot read the status (${why}); still trying every ${io.intervalMs / 1000} s\n`);
        trouble = why;
        view = undefined;
      }
    }
    return ExitCode.ok;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    io.out.off?.('error', onOutError);
  }
}

/** What each mode prints for a view, when it changed. */
function shower(output: 'text' | 'json', io: WatchIo, link: (v: StatusView) => string | undefined): (view: StatusView) => void {
  let last = '';
  if (output === 'json') {
    return (view) => {
      const line = JSON.stringify(view);
      if (line !== last) io.out.write(line + '\n');
      last = line;
    };
  }
  if (io.out.isTTY) {
    const region = new LiveRegion(io.out);
    return (view) => {
      const body = renderStatus(view, link(view)).replace(/\n$/, '').split('\n');
      region.draw([`watching ${view.name} every ${io.intervalMs / 1000} s (Ctrl-C to stop) · as of ${new Date().toISOString().slice(11, 19)}`, '', ...body]);
    };
  }
  return (view) => {
    const line = statusLine(view);
    if (line !== last) io.out.write(`${stamp()} ${line}\n`);
    last = line;
  };
}

/** One line for a log: "llm v1 · traffic v1 50% v2 50% · rollout v1 → v2 rolling_out: … · v1 READY×2, v2 STARTING×1". */
export function statusLine(view: StatusView): string {
  const traffic = Object.entries(view.traffic).map(([v, p]) => `v${v} ${p}%`).join(' ');
  const parts = [`${view.name} ${view.version === 0 ? '(none serving yet)' : `v${view.version}`}`, `traffic ${traffic || 'none'}`];
  if (view.rollout) {
    const r = view.rollout;
    parts.push(`rollout v${r.fromVersion} → v${r.toVersion} ${r.phase}${r.mode !== 'in_place' && r.canaryPercent ? ` ${r.canaryPercent}%` : ''}: ${r.note}`);
  } else if (view.lastRollout) {
    parts.push(`last v${view.lastRollout.version} ${view.lastRollout.outcome}`);
  }
  parts.push(summarizeReplicas(view.replicas));
  // Without the countdown: it would make every poll a change.
  const waiting = view.waiting.map((w) => describeWaiting({ ...w, nextAttemptAt: undefined })).join('; ');
  if (waiting) parts.push(`waiting: ${waiting}`);
  return parts.join(' · ');
}

const stamp = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
