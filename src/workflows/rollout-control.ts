/**
 * The rollout's control state: phase, pause, manual hold, canary step, timeout clock — and
 * which control message makes sense in which state. Workflow code (deterministic; the clock
 * is passed in), but no Temporal calls, so it reads as a state machine.
 *
 *   phase         pause   resume  advance  setCanaryPercent  promote  rollback
 *   rolling_out   ✔       ✘       ✔ steps  ✔                 ✔        ✔
 *   paused        ✘       ✔       ✔ steps  ✔                 ✔        ✔
 *   manual hold   ✘       ✔       ✔        ✔                 ✔        ✔
 *   rolling_back  ✘       ✘       ✘        ✘                 ✘        ✘
 *   finished      ✘       ✘       ✘        ✘                 ✘        ✘
 * In-place updates take pause and resume only; replica-led rollouts (rolling, blue-green)
 * have no steps to advance, and blue-green never splits traffic (no setCanaryPercent).
 */
import { describeStep } from '../plan/steps';
import { parseDurationMs } from '../spec/duration';
import type { CanaryStep, RolloutStrategy } from '../spec/types';
import { CONTROL_ACTIONS, CONTROL_COMMAND_NAMES, type ControlRequest, type RolloutCause } from './types';

export type ControlPhase = 'rolling_out' | 'rolling_back' | 'succeeded' | 'rolled_back' | 'failed';

export interface ControlOptions {
  steps: CanaryStep[];
  strategy: RolloutStrategy;
  /** Traffic-led from the start (canary strategy, constrained surge, or a manual percent). */
  trafficLed: boolean;
  inPlace: boolean;
  /** False for a first deploy: there is no version to split traffic with. */
  hasPrimary: boolean;
  timeoutMs: number;
  /**
   * At least this long for a rollback: bringing the old version back means loading it, which may
   * take up to its readiness grace period (`initial_delay_seconds`), however short `timeout` is.
   */
  rollbackMinMs: number;
  now: number;
  manualPercent?: number;
}

const REFUSED_KEPT = 10;
/**
 * At most this much of each refused message. A refusal says what it got, and a bad payload may be
 * megabytes; the status (every query's and every control update's answer) carries the last ten,
 * and an answer past the server's message limit is never delivered: the update's workflow task
 * would fail on every retry.
 */
const REFUSED_CHARS = 300;

/** A value as JSON for a message, clipped (see REFUSED_CHARS). */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}… (${text.length} characters)` : text;
}

/**
 * Why `req` is no control request at all, whatever the rollout's state: not an object with a known
 * action, a percent that is not a number from 0 to 100, a reason that is not text. The service
 * workflow refuses these too before forwarding, so they never enter its (long-lived) history.
 */
export function malformedRequest(req: unknown): string | undefined {
  const r = typeof req === 'object' && req !== null ? (req as Record<string, unknown>) : {};
  const action = r.action;
  if (typeof action !== 'string' || !(CONTROL_ACTIONS as readonly string[]).includes(action)) {
    return `unknown action ${shown(action)}: expected pause, resume, advance, setCanaryPercent, promote or rollback`;
  }
  const p = r.percent;
  if (action === 'setCanaryPercent' && (typeof p !== 'number' || !Number.isFinite(p) || p < 0 || p > 100)) return `needs a percent from 0 to 100, got ${shown(p ?? null)}`;
  // Whole percents, as the CLI takes them: the router splits by replica weights, and 40.5% would read as a precision it does not have.
  if (action === 'setCanaryPercent' && !Number.isInteger(p)) return `needs a whole percent (0, 1 … 100), got ${shown(p)}`;
  // Text or nothing: apply() puts it in a string, and an object that will not become one
  // ({"toString": 1}) would throw there, failing the workflow task on every retry.
  const reason = r.reason;
  if (action === 'rollback' && reason !== undefined && reason !== null && typeof reason !== 'string') return `a reason must be text, got ${shown(reason)}`;
  return undefined;
}

/** A rollback reason keeps at most this many characters (the CLI refuses longer ones). */
export const ROLLBACK_REASON_MAX = 500;

/**
 * A reason as it is kept and shown: control characters (escape sequences, carriage returns) as
 * spaces, at most ROLLBACK_REASON_MAX characters. A signal or update sent around the CLI may carry
 * anything; the service keeps its last rollouts' reasons and every `status` prints them.
 */
export function reasonText(reason: string): string {
  const clean = reason.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
  if (clean.length <= ROLLBACK_REASON_MAX) return clean;
  // Clipped already (the service clips what it forwards): kept, so the first length is what shows.
  const clipped = CLIPPED_SUFFIX.exec(clean);
  if (clipped && clipped.index === ROLLBACK_REASON_MAX) return clean;
  return `${clean.slice(0, ROLLBACK_REASON_MAX)}… (${clean.length} characters)`;
}

const CLIPPED_SUFFIX = /… \(\d+ characters\)$/;

/** Everything a RolloutControl holds, as plain data: carried across continue-as-new. */
export interface ControlSnapshot {
  phase: ControlPhase;
  reason?: string;
  /** Absent in snapshots taken before it existed. */
  cause?: RolloutCause;
  paused: boolean;
  manual: boolean;
  manualPercent: number;
  trafficLed: boolean;
  stepIndex: number;
  stepPauseUntil?: number;
  refused: string[];
  deadline: number;
  clockStoppedAt?: number;
}

export class RolloutControl {
  phase: ControlPhase = 'rolling_out';
  reason?: string;
  /** What started the rollback, or ended the rollout (see RolloutCause). */
  cause?: RolloutCause;
  paused = false;
  manual = false;
  manualPercent = 0;
  trafficLed: boolean;
  stepIndex = 0;
  /** Epoch ms at which the current timed pause step ends. */
  stepPauseUntil?: number;
  /** Refused or ignored messages, newest last. */
  readonly refused: string[] = [];
  readonly steps: CanaryStep[];
  private deadline: number;
  /** When the timeout clock stopped (paused or manual), if it did. */
  private clockStoppedAt?: number;
  private changed = false;

  constructor(private readonly opts: ControlOptions) {
    this.steps = opts.steps;
    this.trafficLed = opts.trafficLed;
    this.deadline = opts.now + opts.timeoutMs;
    if (opts.manualPercent !== undefined) this.enterManual(opts.manualPercent, opts.now);
    this.enterStep(0, opts.now);
  }

  /** The state as plain data (see restore). */
  snapshot(): ControlSnapshot {
    const { phase, reason, cause, paused, manual, manualPercent, trafficLed, stepIndex, stepPauseUntil, deadline, clockStoppedAt } = this;
    return { phase, reason, ...(cause ? { cause } : {}), paused, manual, manualPercent, trafficLed, stepIndex, stepPauseUntil, refused: [...this.refused], deadline, clockStoppedAt };
  }

  /** Takes up a snapshot's state as it was (the clock included: a held rollout stays held). */
  restore(s: ControlSnapshot): void {
    ({ phase: this.phase, reason: this.reason, cause: this.cause, paused: this.paused, manual: this.manual, manualPercent: this.manualPercent } = s);
    ({ trafficLed: this.trafficLed, stepIndex: this.stepIndex, stepPauseUntil: this.stepPauseUntil, deadline: this.deadline, clockStoppedAt: this.clockStoppedAt } = s);
    this.refused.splice(0, this.refused.length, ...s.refused);
    this.changed = true;
  }

  // ── reading ─────────────────────────────────────────────────────────────────

  /** The canary percent to move to or hold. */
  targetWeight(): number {
    if (this.manual) return this.manualPercent;
    for (let i = Math.min(this.stepIndex, this.steps.length - 1); i >= 0; i--) {
      const step = this.steps[i];
      if ('weight' in step) return step.weight;
    }
    return 0;
  }

  currentStep(): CanaryStep | undefined {
    return this.steps[this.stepIndex];
  }

  /** The rollback deadline; null while the user holds the rollout in manual mode. */
  deadlineAt(now: number): number | null {
    if (this.manual) return null;
    return this.clockStoppedAt === undefined ? this.deadline : this.deadline + (now - this.clockStoppedAt);
  }

  /** The timed pause step's end, moved by a pause in progress. */
  pauseStepEndsAt(now: number): number | undefined {
    if (this.stepPauseUntil === undefined) return undefined;
    return this.clockStoppedAt === undefined ? this.stepPauseUntil : this.stepPauseUntil + (now - this.clockStoppedAt);
  }

  timedOut(now: number): boolean {
    const d = this.deadlineAt(now);
    return this.clockStoppedAt === undefined && d !== null && now >= d;
  }

  /** Planning stops while paused: traffic and replicas hold where they are. */
  holdsTraffic(): boolean {
    return this.paused;
  }

  finished(): boolean {
    return this.phase === 'succeeded' || this.phase === 'rolled_back' || this.phase === 'failed';
  }

  takeChanged(): boolean {
    const c = this.changed;
    this.changed = false;
    return c;
  }

  hasChanged(): boolean {
    return this.changed;
  }

  // ── control messages ────────────────────────────────────────────────────────

  /** Why `req` cannot be carried out now, or undefined when it can. */
  validate(req: ControlRequest): string | undefined {
    const malformed = malformedRequest(req);
    if (malformed) return malformed;
    const a = req.action;
    const spoken = CONTROL_COMMAND_NAMES[a];
    if (this.finished()) return `the rollout has finished (${this.phase.replace('_', ' ')}); nothing to ${spoken}`;
    if (this.phase === 'rolling_back') return `the rollout is rolling back (${this.reason ?? 'rollback'}); it can only finish rolling back, not ${spoken}`;
    if (this.opts.inPlace && a !== 'pause' && a !== 'resume') {
      return `an in-place update restarts nothing and has no canary: ${spoken} does not apply (deploy the previous spec to undo it)`;
    }
    switch (a) {
      case 'pause':
        if (this.paused) return 'already paused';
        if (this.manual) return `manual mode already holds the canary at ${this.manualPercent}%; use resume, advance or promote to go on`;
        return undefined;
      case 'resume':
        return this.paused || this.manual || this.atIndefinitePause() ? undefined : 'not paused, not held at a pause step and not in manual mode: nothing to resume';
      case 'advance':
        if (!this.trafficLed) {
          return this.opts.strategy === 'blue_green'
            ? 'a blue_green rollout has no steps: it moves on by itself'
            : `a ${this.opts.strategy} rollout has no steps: it moves on by itself (set-canary takes manual control)`;
        }
        if (!this.manual && this.stepIndex >= this.steps.length - 1) return `already at the last step (${describeStep(this.steps[this.steps.length - 1])}); nothing to advance to`;
        return undefined;
      case 'setCanaryPercent': {
        if (this.opts.strategy === 'blue_green') return 'a blue_green rollout never splits traffic: setCanaryPercent does not apply';
        if (!this.opts.hasPrimary) return 'a first deploy has no serving version to split traffic with';
        return undefined;
      }
      case 'promote':
        return undefined;
      case 'rollback':
        return undefined;
    }
  }

  /** Carries out a request `validate` accepted. */
  apply(req: ControlRequest, now: number): void {
    this.changed = true;
    switch (req.action) {
      case 'pause':
        this.paused = true;
        this.stopClock(now);
        return;
      case 'resume':
        if (this.manual) this.leaveManual(now, 'resume');
        else if (!this.paused && this.atIndefinitePause()) this.enterStep(this.stepIndex + 1, now);
        this.paused = false;
        this.restartClock(now);
        return;
      case 'advance':
        if (this.manual) this.leaveManual(now, 'advance');
        else this.enterStep(this.stepIndex + 1, now);
        this.paused = false;
        this.restartClock(now);
        return;
      case 'setCanaryPercent':
        this.trafficLed = true;
        this.paused = false;
        this.enterManual(req.percent as number, now);
        return;
      case 'promote':
        this.manual = false;
        this.paused = false;
        this.trafficLed = this.trafficLed || this.opts.hasPrimary;
        this.enterStep(this.steps.length - 1, now);
        this.restartClock(now);
        return;
      case 'rollback':
        this.rollBack(req.reason ? `manual rollback: ${reasonText(req.reason)}` : 'manual rollback', now, {
          kind: 'person',
          ...(req.reason ? { personReason: reasonText(req.reason) } : {}),
        });
        return;
    }
  }

  /** What the rollout does next after `apply(req)`: its note until the next step is planned. */
  describeAccepted(req: ControlRequest): string {
    switch (req.action) {
      case 'pause':
        return 'paused: traffic holds where it is';
      case 'setCanaryPercent':
        return `moving the canary to ${req.percent}% and holding there`;
      case 'rollback':
        return `rolling back: ${this.reason ?? 'manual rollback'}`;
      default:
        return this.trafficLed ? `${req.action} accepted: moving the canary to ${this.targetWeight()}%` : `${req.action} accepted: going on`;
    }
  }

  /** Records a message that was refused before it could be validated (a bad signal payload). */
  refuse(action: string, why: string): void {
    const line = `${action}: ${why}`;
    this.refused.push(line.length > REFUSED_CHARS ? `${line.slice(0, REFUSED_CHARS)}… (${line.length} characters)` : line);
    if (this.refused.length > REFUSED_KEPT) this.refused.shift();
    this.changed = true;
  }

  /** A signal: carried out when valid, otherwise recorded and ignored (never a workflow failure). */
  signal(req: ControlRequest, now: number): string | undefined {
    const refusal = this.validate(req);
    if (refusal) {
      this.refuse(String(req?.action ?? '?'), refusal);
      return refusal;
    }
    this.apply(req, now);
    return undefined;
  }

  // ── what the workflow reports ───────────────────────────────────────────────

  rollBack(why: string, now: number, cause?: RolloutCause): void {
    if (this.phase !== 'rolling_out') return;
    this.phase = 'rolling_back';
    this.reason = why;
    this.cause = cause;
    this.paused = false;
    this.manual = false;
    this.clockStoppedAt = undefined;
    this.stepPauseUntil = undefined;
    // The rollback gets a full timeout of its own, and at least the time the old version may need to load.
    this.deadline = now + Math.max(this.opts.timeoutMs, this.opts.rollbackMinMs);
    this.changed = true;
  }

  finish(phase: 'succeeded' | 'rolled_back' | 'failed', reason?: string, cause?: RolloutCause): void {
    this.phase = phase;
    if (reason !== undefined) this.reason = reason;
    // What started a rollback stays what ended the rollout, even when the rollback then failed.
    this.cause ??= cause;
    this.changed = true;
  }

  /**
   * After planning: moves past a weight step once reached (and, with analysis, judged
   * healthy), and past a timed pause once it ended. Returns true when the step changed.
   */
  progress(reachedWeight: boolean, analysisAllows: boolean, now: number): boolean {
    if (this.phase !== 'rolling_out' || this.paused || this.manual || !this.trafficLed) return false;
    const step = this.currentStep();
    if (!step || this.stepIndex >= this.steps.length - 1) return false;
    if ('weight' in step) {
      if (!reachedWeight || !analysisAllows) return false;
    } else {
      const ends = this.pauseStepEndsAt(now);
      if (ends === undefined || now < ends || !analysisAllows) return false;
    }
    this.enterStep(this.stepIndex + 1, now);
    return true;
  }

  // ── internals ───────────────────────────────────────────────────────────────

  /**
   * Pause steps do not count against the timeout (as Argo Rollouts): a timed pause moves the
   * deadline by its duration; an indefinite one stops the clock until someone lets it go on.
   */
  private enterStep(index: number, now: number): void {
    const wasIndefinite = this.atIndefinitePause();
    this.stepIndex = Math.max(0, Math.min(index, this.steps.length - 1));
    const step = this.steps[this.stepIndex];
    this.stepPauseUntil = undefined;
    if (step && 'pause' in step && step.pause.duration) {
      const ms = parseDurationMs(step.pause.duration);
      this.stepPauseUntil = now + ms;
      this.deadline += ms;
    }
    if (wasIndefinite && !this.atIndefinitePause()) this.restartClock(now);
    if (this.atIndefinitePause()) this.stopClock(now);
    this.changed = true;
  }

  /** Held at a `{pause: {}}` step (traffic-led rollouts only walk steps). */
  private atIndefinitePause(): boolean {
    const step = this.steps[this.stepIndex];
    return this.trafficLed && !this.manual && step !== undefined && 'pause' in step && !step.pause.duration;
  }

  private enterManual(percent: number, now: number): void {
    this.manual = true;
    this.manualPercent = percent;
    this.stopClock(now);
  }

  /** Back to the steps, at the first weight step at (resume) or above (advance) the held percent. */
  private leaveManual(now: number, how: 'resume' | 'advance'): void {
    const held = this.manualPercent;
    this.manual = false;
    const next = this.steps.findIndex((s) => 'weight' in s && (how === 'resume' ? s.weight >= held : s.weight > held));
    this.enterStep(next === -1 ? this.steps.length - 1 : next, now);
  }

  private stopClock(now: number): void {
    if (this.clockStoppedAt === undefined) this.clockStoppedAt = now;
  }

  /** The timeout (and a timed pause step) do not count time spent paused, held in manual mode or at an indefinite pause. */
  private restartClock(now: number): void {
    if (this.paused || this.manual || this.atIndefinitePause() || this.clockStoppedAt === undefined) return;
    const stopped = now - this.clockStoppedAt;
    this.deadline += stopped;
    if (this.stepPauseUntil !== undefined) this.stepPauseUntil += stopped;
    this.clockStoppedAt = undefined;
  }
}
