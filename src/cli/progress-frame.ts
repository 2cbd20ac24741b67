/**
 * The live display of `rollout deploy --wait` in a terminal: a pure function from the rollout's
 * status (and what it waits for) to the lines of one frame, redrawn by LiveRegion whenever it
 * changes. Without a terminal, `deploy --wait` prints one plain line per change instead
 * (describeProgress in progress.ts).
 */
import type { ReplicaRecord, RolloutStatus } from '../workflows/types';
import { describeCanary } from './progress';
import { describeWaiting, type WaitingOn } from './waiting';

const BAR_CELLS = 30;
/** One fill per version, oldest first: told apart without colour. */
const FILLS = ['█', '▒', '░', '▓'];
const STATES: ReplicaRecord['status'][] = ['READY', 'STARTING', 'PROVISIONING', 'NOT_READY', 'SHUTTING_DOWN', 'FAILED'];

export function progressFrame(status: RolloutStatus, waiting: readonly WaitingOn[], elapsedMs: number, now: number): string[] {
  const versions = status.fromVersion === 0 ? `first deploy → v${status.toVersion}` : `v${status.fromVersion} → v${status.toVersion}`;
  const lines = [`${status.service}  ${versions}  ${status.phase}  ${clock(elapsedMs)}`];
  lines.push(`traffic   ${trafficBar(status.traffic)}`);
  lines.push(...replicaLines(status.replicas).map((l, i) => `${i === 0 ? 'replicas' : ''.padEnd(8)}  ${l}`));
  const canary = describeCanary(status);
  if (canary) lines.push(`canary    ${canary}`);
  if (status.analysis) {
    const a = status.analysis;
    lines.push(`analysis  ${a.passed} passed, ${a.failed} failed (rollback above ${a.failureLimit})${a.last ? `; last ${a.last.verdict}${a.last.reasons.length ? `: ${a.last.reasons.join('; ')}` : ''}` : ''}`);
  }
  if (status.reason) lines.push(`reason    ${status.reason}`);
  lines.push(`now       ${status.note}`);
  for (const w of waiting) lines.push(`waiting   ${describeWaiting(w, now)}`);
  return lines;
}

/** "[██████████▒▒▒▒▒▒▒▒▒▒]  █ v1 50%  ▒ v2 50%", or "no traffic yet". */
export function trafficBar(traffic: Record<string, number>): string {
  const entries = Object.entries(traffic)
    .map(([v, pct]) => [Number(v), pct] as const)
    .filter(([, pct]) => pct > 0)
    .sort(([a], [b]) => a - b);
  if (entries.length === 0) return 'no traffic yet';
  // Cells by largest remainder, so they always add up to the bar's width.
  const exact = entries.map(([, pct]) => (pct / 100) * BAR_CELLS);
  const cells = exact.map(Math.floor);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0]);
  for (let k = 0, left = BAR_CELLS - cells.reduce((a, b) => a + b, 0); k < left && k < order.length; k++) cells[order[k][1]] += 1;
  const bar = entries.map((_, i) => FILLS[i % FILLS.length].repeat(cells[i])).join('');
  const legend = entries.map(([v, pct], i) => `${FILLS[i % FILLS.length]} v${v} ${pct}%`).join('  ');
  return `[${bar.padEnd(BAR_CELLS, ' ')}]  ${legend}`;
}

/** One line per version: "v1  READY 2  SHUTTING_DOWN 1". */
export function replicaLines(replicas: readonly ReplicaRecord[]): string[] {
  const byVersion = new Map<number, Map<string, number>>();
  for (const r of replicas) {
    const counts = byVersion.get(r.version) ?? new Map<string, number>();
    counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
    byVersion.set(r.version, counts);
  }
  if (byVersion.size === 0) return ['none'];
  return [...byVersion.entries()]
    .sort(([a], [b]) => a - b)
    .map(([v, counts]) => `v${v}  ${[...counts.entries()].sort(([a], [b]) => rank(a) - rank(b)).map(([s, n]) => `${s} ${n}`).join('  ')}`);
}

const rank = (state: string): number => {
  const i = STATES.indexOf(state as ReplicaRecord['status']);
  return i === -1 ? STATES.length : i;
};

function clock(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}
