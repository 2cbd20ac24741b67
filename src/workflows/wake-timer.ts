/**
 * A rollout's wait for "something changed, or the next deadline": one durable timer per
 * wake-up time, kept across the loop's turns. `condition(fn, timeout)` starts a timer and
 * cancels it on every turn (two history events a turn); the deadline rarely moves, so this
 * starts one when it does. Workflow code: deterministic, no I/O.
 */
import { CancellationScope, condition, isCancellation, sleep } from '@temporalio/workflow';

export class WakeTimer {
  private current?: { at: number; scope: CancellationScope; fired: Promise<void> };

  /** Waits until `woke()` is true or the time `at` (epoch ms; Infinity: none) has come. */
  async until(at: number, woke: () => boolean): Promise<void> {
    if (woke()) return;
    if (this.current && this.current.at !== at) {
      this.current.scope.cancel();
      this.current = undefined;
    }
    if (at === Infinity) return condition(woke);
    if (!this.current) {
      const scope = new CancellationScope();
      const fired = scope.run(() => sleep(Math.max(1, at - Date.now()))).catch((err: unknown) => {
        if (!isCancellation(err)) throw err;
      });
      this.current = { at, scope, fired };
    }
    const timer = this.current;
    await Promise.race([condition(woke), timer.fired]);
    // A timer that fired is used up: the next wait for the same time returns at once only if it is still due.
    if (this.current === timer && Date.now() >= at) this.current = undefined;
  }
}
