/**
 * The rollout's control state machine on its own (it is plain workflow-safe code with the
 * clock passed in): the timeout clock across pauses, pause steps, manual mode and rollbacks;
 * and the service's deploy decision after a failed rollout.
 */
import { decideServiceDeploy } from '../../src/spec/diff';
import type { CanaryStep } from '../../src/spec/types';
import { RolloutControl, type ControlOptions } from '../../src/workflows/rollout-control';
import { serviceSpec } from '../helpers/workflow-harness';

const MIN = 60_000;
const control = (steps: CanaryStep[], over: Partial<ControlOptions> = {}) =>
  new RolloutControl({ steps, strategy: 'canary', trafficLed: true, inPlace: false, hasPrimary: true, timeoutMs: 10 * MIN, rollbackMinMs: 0, now: 0, ...over });

describe('the timeout clock', () => {
  test('runs while rolling out: 10 minutes after the start it has timed out', () => {
    const c = control([{ weight: 50 }, { weight: 100 }]);
    expect(c.timedOut(10 * MIN - 1)).toBe(false);
    expect(c.timedOut(10 * MIN)).toBe(true);
    expect(c.deadlineAt(0)).toBe(10 * MIN);
  });

  test('a timed pause step moves the deadline by its duration', () => {
    const c = control([{ weight: 50 }, { pause: { duration: '20m' } }, { weight: 100 }]);
    expect(c.progress(true, true, 2 * MIN)).toBe(true); // weight reached at 2 min → the pause
    expect(c.pauseStepEndsAt(2 * MIN)).toBe(22 * MIN);
    expect(c.deadlineAt(2 * MIN)).toBe(30 * MIN);
    expect(c.timedOut(25 * MIN)).toBe(false);
    expect(c.progress(false, true, 22 * MIN)).toBe(true); // the pause ended → weight 100
    expect(c.timedOut(30 * MIN)).toBe(true);
  });

  test('an indefinite pause step stops the clock until resume (which goes on) or advance', () => {
    const c = control([{ weight: 50 }, { pause: {} }, { weight: 100 }]);
    c.progress(true, true, 5 * MIN);
    expect(c.stepIndex).toBe(1);
    expect(c.timedOut(5 * 60 * MIN)).toBe(false); // five hours later: still holding
    expect(c.validate({ action: 'resume' })).toBeUndefined();
    c.apply({ action: 'resume' }, 6 * 60 * MIN);
    expect(c.stepIndex).toBe(2);
    // 5 minutes were used before the pause: 5 left after it.
    expect(c.deadlineAt(6 * 60 * MIN)).toBe(6 * 60 * MIN + 5 * MIN);
  });

  test('pause and resume: paused time does not count', () => {
    const c = control([{ weight: 100 }]);
    c.apply({ action: 'pause' }, 3 * MIN);
    expect(c.timedOut(60 * MIN)).toBe(false);
    expect(c.deadlineAt(60 * MIN)).toBe(67 * MIN);
    c.apply({ action: 'resume' }, 60 * MIN);
    expect(c.deadlineAt(60 * MIN)).toBe(67 * MIN);
    expect(c.timedOut(67 * MIN)).toBe(true);
  });

  test('manual mode: no deadline at all; leaving it restarts the clock where it stopped', () => {
    const c = control([{ weight: 10 }, { weight: 50 }, { weight: 100 }]);
    c.apply({ action: 'setCanaryPercent', percent: 30 }, 4 * MIN);
    expect(c.deadlineAt(4 * MIN)).toBeNull();
    expect(c.timedOut(24 * 60 * MIN)).toBe(false);
    c.apply({ action: 'resume' }, 24 * 60 * MIN);
    expect(c.targetWeight()).toBe(50); // the first weight ≥ the held 30%
    expect(c.deadlineAt(24 * 60 * MIN)).toBe(24 * 60 * MIN + 6 * MIN);
  });

  test('a rollback gets max(timeout, the old version’s load time) of its own', () => {
    const quick = control([{ weight: 100 }], { timeoutMs: 1 * MIN, rollbackMinMs: 21 * MIN });
    quick.rollBack('timed out', 1 * MIN);
    expect(quick.phase).toBe('rolling_back');
    expect(quick.deadlineAt(1 * MIN)).toBe(22 * MIN);
    const slow = control([{ weight: 100 }], { timeoutMs: 60 * MIN, rollbackMinMs: 21 * MIN });
    slow.rollBack('manual rollback', 5 * MIN);
    expect(slow.deadlineAt(5 * MIN)).toBe(65 * MIN);
  });
});

describe('messages in words people type', () => {
  test.each([
    [{ action: 'setCanaryPercent' as const, percent: 150 }, /needs a percent from 0 to 100, got 150/],
    [{ action: 'advance' as const }, /already at the last step/],
  ])('%j → %s', (req, message) => {
    expect(control([{ weight: 100 }]).validate(req)).toMatch(message);
  });

  test('after the rollout finished: "nothing to set-canary", not the wire name', () => {
    const c = control([{ weight: 100 }]);
    c.finish('succeeded');
    expect(c.validate({ action: 'setCanaryPercent', percent: 10 })).toBe('the rollout has finished (succeeded); nothing to set-canary');
  });

  test('blue-green: advance does not suggest set-canary, which blue-green refuses', () => {
    const c = control([{ weight: 100 }], { strategy: 'blue_green', trafficLed: false });
    expect(c.validate({ action: 'advance' })).toBe('a blue_green rollout has no steps: it moves on by itself');
  });

  test('a refused signal is recorded once, with its signal name', () => {
    const c = control([{ weight: 100 }]);
    c.signal({ action: 'setCanaryPercent', percent: 150 }, 0);
    expect(c.refused).toEqual(['setCanaryPercent: needs a percent from 0 to 100, got 150']);
  });
});

describe('deploy decision of a service', () => {
  const v1 = serviceSpec({ name: 'svc' });
  test.each([
    ['whole service, same spec', [{ id: 'a', version: 3, status: 'READY' }], 'unchanged'],
    ['whole service, only replicas changed', [{ id: 'a', version: 3, status: 'READY' }], 'in_place', { replicas: 3 }],
    ['a failed rollout left a v4 replica', [{ id: 'a', version: 3, status: 'READY' }, { id: 'b', version: 4, status: 'READY' }], 'rollout'],
    ['a failed rollout left one loading', [{ id: 'a', version: 3, status: 'READY' }, { id: 'b', version: 3, status: 'STARTING' }], 'rollout'],
  ] as const)('%s → %s', (_name, replicas, mode, change: Partial<typeof v1> = {}) => {
    const decision = decideServiceDeploy({ spec: v1, version: 3, replicas: [...replicas] }, { ...v1, ...change });
    expect(decision.mode).toBe(mode);
    const stray = replicas[1];
    if (stray) expect(decision.reason).toBe(`the last rollout left b (v${stray.version} ${stray.status}): every replica is replaced`);
  });
});

describe('what ended the rollout, as data (rollout history reads it)', () => {
  test('a person: their reason, cleaned as it is kept', () => {
    const c = control([{ weight: 100 }]);
    c.apply({ action: 'rollback', reason: 'p99\u001b[31m too high' }, 1 * MIN);
    expect(c.cause).toEqual({ kind: 'person', personReason: 'p99 [31m too high' });
    expect(c.reason).toBe('manual rollback: p99 [31m too high');
  });

  test('a person without a reason', () => {
    const c = control([{ weight: 100 }]);
    c.apply({ action: 'rollback' }, 1 * MIN);
    expect(c.cause).toEqual({ kind: 'person' });
  });

  test('a rollback that then fails keeps what started it; a failure with none before is its own cause', () => {
    const c = control([{ weight: 100 }]);
    c.rollBack('timed out after 10m', 10 * MIN, { kind: 'timeout' });
    c.finish('failed', 'timed out after 10m; the rollback did not complete in time', { kind: 'activity_failed' });
    expect(c.cause).toEqual({ kind: 'timeout' });
    const d = control([{ weight: 100 }]);
    d.finish('failed', 'UnauthorizedOperation', { kind: 'activity_failed' });
    expect(d.cause).toEqual({ kind: 'activity_failed' });
  });

  test('carried across continue-as-new, and absent from a snapshot when there is none', () => {
    const c = control([{ weight: 50 }, { pause: {} }, { weight: 100 }]);
    expect('cause' in c.snapshot()).toBe(false);
    c.rollBack('analysis failed: 5xx', 2 * MIN, { kind: 'analysis' });
    const next = control([{ weight: 50 }, { pause: {} }, { weight: 100 }]);
    next.restore(c.snapshot());
    expect(next.cause).toEqual({ kind: 'analysis' });
  });
});
