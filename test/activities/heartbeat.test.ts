/**
 * Heartbeat cadence follows the activity's own heartbeat timeout: the rollout's activities (5 s)
 * heartbeat every second as before, a service's idle watch (30 s) every 6 s. Counted on the SDK's
 * activity environment (its heartbeat events), with fake timers: no real time passes.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { HEARTBEAT_EVERY_MS, heartbeatEveryMs, keepHeartbeating } from '../../src/activities/heartbeat';

describe('heartbeatEveryMs', () => {
  it.each([
    [undefined, HEARTBEAT_EVERY_MS],
    [2_000, HEARTBEAT_EVERY_MS],
    [5_000, 1_000],
    [30_000, 6_000],
    [60_000, 12_000],
  ])('timeout %p ms: every %p ms', (timeout, every) => {
    expect(heartbeatEveryMs(timeout)).toBe(every);
  });
});

describe('keepHeartbeating', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  async function heartbeatsOver(heartbeatTimeoutMs: number, elapsedMs: number): Promise<number> {
    const env = new MockActivityEnvironment({ heartbeatTimeoutMs });
    let count = 0;
    env.on('heartbeat', () => count++);
    await env.run(async () => {
      const stop = keepHeartbeating(() => ({ n: count }));
      jest.advanceTimersByTime(elapsedMs);
      stop();
      // Stopped: no more heartbeats however long it is left.
      jest.advanceTimersByTime(10 * elapsedMs);
    });
    return count;
  }

  it('a 5 s timeout: one at once, then one a second', async () => {
    expect(await heartbeatsOver(5_000, 10_000)).toBe(11);
  });

  it('a 30 s timeout (the idle watch): one at once, then one every 6 s', async () => {
    expect(await heartbeatsOver(30_000, 60_000)).toBe(11);
  });
});
