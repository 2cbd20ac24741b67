/**
 * Bounded exponential backoff with full jitter for EC2's request throttling
 * (`RequestLimitExceeded`): attempt i waits random(0, min(cap, base · 2^i)) before trying again,
 * so workers throttled together do not come back together. After `attempts` tries the last
 * error is thrown (the caller makes it a retryable ThrottlingError, and the activity's own
 * retry policy takes over). The SDK's retries (maxAttempts) come on top, per call.
 *
 *   defaults: 5 attempts, base 250 ms, cap 4 s → at most 0.25 + 0.5 + 1 + 2 = 3.75 s of waiting.
 */
export interface BackoffOptions {
  attempts: number;
  baseMs: number;
  capMs: number;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = {
  attempts: 5,
  baseMs: 250,
  capMs: 4000,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  random: Math.random,
};

/** The wait before retry number `retry` (0-based). */
export function backoffDelayMs(retry: number, opts: Pick<BackoffOptions, 'baseMs' | 'capMs' | 'random'>): number {
  return Math.floor(opts.random() * Math.min(opts.capMs, opts.baseMs * 2 ** retry));
}

/** Runs `call`, retrying while `shouldRetry(err)` says so, at most `attempts` times in all. */
export async function withBackoff<T>(call: () => Promise<T>, shouldRetry: (err: unknown) => boolean, opts: BackoffOptions = DEFAULT_BACKOFF): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (!shouldRetry(err) || attempt + 1 >= opts.attempts) throw err;
      await opts.sleep(backoffDelayMs(attempt, opts));
    }
  }
}
