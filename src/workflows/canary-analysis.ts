/**
 * Automated canary analysis inside the rollout workflow: every `interval` it reads the
 * router's cumulative figures (one activity), judges the window since the previous reading
 * with the pure `judgeCanary`, and tallies the verdicts. The first reading is the baseline.
 * More failed checks than `failure_limit` → the workflow rolls back; the rollout moves past
 * a step only after a check passed during it (inconclusive = hold, not promote).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { judgeCanary, NO_CHECKS, tallyChecks, versionWindow } from '../plan/analysis';
import type { CheckTally, StatsSnapshot, Verdict } from '../plan/analysis';
import { parseDurationMs } from '../spec/duration';
import type { AnalysisSpec } from '../spec/types';
import type { AnalysisStatus } from './types';

// One read of the router's counters: milliseconds. Bounded tightly so a worker crash during it
// costs seconds, not half a minute.
const { readTrafficStats } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '5 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 10 },
});

/** An analysis's state as plain data: carried across continue-as-new. */
export interface AnalysisSnapshot {
  previous?: StatsSnapshot;
  next: number;
  tally: CheckTally;
  last?: { verdict: Verdict; reasons: string[]; at: number };
  passedThisStep: boolean;
}

export class CanaryAnalysis {
  private readonly intervalMs: number;
  private previous?: StatsSnapshot;
  private next = 0;
  private tally: CheckTally = NO_CHECKS;
  private last?: { verdict: Verdict; reasons: string[]; at: number };
  /** A check passed since the current step began. */
  private passedThisStep = false;

  constructor(
    private readonly service: string,
    private readonly spec: AnalysisSpec,
    carried?: AnalysisSnapshot,
  ) {
    this.intervalMs = parseDurationMs(spec.interval);
    if (carried) ({ previous: this.previous, next: this.next, tally: this.tally, last: this.last, passedThisStep: this.passedThisStep } = carried);
  }

  snapshot(): AnalysisSnapshot {
    return { previous: this.previous, next: this.next, tally: { ...this.tally }, last: this.last, passedThisStep: this.passedThisStep };
  }

  due(now: number): boolean {
    return now >= this.next;
  }

  nextAt(): number {
    return this.next;
  }

  /** One reading; a verdict from the second reading on. */
  async check(canaryVersion: number, primaryVersion: number): Promise<{ rollback: boolean; reasons: string[] }> {
    let current: StatsSnapshot;
    try {
      current = await readTrafficStats.executeWithOptions({ summary: `analysis: read v${canaryVersion} and v${primaryVersion} figures` }, [{ service: this.service }]);
    } catch (err) {
      // The router cannot be read: no verdict this interval (hold), and try again at the next.
      this.record('inconclusive', [`router figures unavailable: ${err instanceof Error ? err.message : String(err)}`]);
      this.next = Date.now() + this.intervalMs;
      return { rollback: false, reasons: [] };
    }
    const previous = this.previous;
    this.previous = current;
    this.next = Date.now() + this.intervalMs;
    if (!previous) return { rollback: false, reasons: [] };
    const judgement = judgeCanary({
      canary: versionWindow(previous, current, canaryVersion),
      primary: versionWindow(previous, current, primaryVersion),
      thresholds: this.spec,
    });
    this.record(judgement.verdict, judgement.reasons);
    const tally = tallyChecks(this.tally, judgement.verdict, this.spec.failure_limit);
    this.tally = { passed: tally.passed, failed: tally.failed, inconclusive: tally.inconclusive };
    if (judgement.verdict === 'pass') this.passedThisStep = true;
    return { rollback: tally.rollback, reasons: judgement.reasons };
  }

  /** The rollout may move past its current step: a check passed during it. */
  allowsProgress(): boolean {
    return this.passedThisStep;
  }

  stepChanged(): void {
    this.passedThisStep = false;
  }

  status(): AnalysisStatus {
    return { ...this.tally, failureLimit: this.spec.failure_limit, last: this.last };
  }

  private record(verdict: Verdict, reasons: string[]): void {
    this.last = { verdict, reasons, at: Date.now() };
  }
}
