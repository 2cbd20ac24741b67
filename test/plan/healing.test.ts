/** Self-healing decisions: a replica's health from raw facts, marking lost replicas, retry backoff. */
import fc from 'fast-check';
import { healingBackoffMs, isWhole, judgeReplica, markLost } from '../../src/plan/healing';

describe('judgeReplica', () => {
  test.each([
    { name: 'healthy', prev: 2, seen: { running: true, probeOk: true }, expected: { failures: 0 } },
    { name: 'one failed probe is not yet lost', prev: 0, seen: { running: true, probeOk: false, probeDetail: 'HTTP 503' }, expected: { failures: 1 } },
    { name: 'the threshold-th failed probe loses it', prev: 2, seen: { running: true, probeOk: false, probeDetail: 'HTTP 503' }, expected: { failures: 3, lost: 'failed 3 readiness probes in a row (last: HTTP 503)' } },
    { name: 'a process that stopped is lost at once', prev: 0, seen: { running: false, exitInfo: 'exit code 137', probeOk: false }, expected: { failures: 0, lost: 'stopped (exit code 137)' } },
    { name: 'gone without a word', prev: 1, seen: { running: false, probeOk: true }, expected: { failures: 1, lost: 'stopped (gone)' } },
  ])('$name', ({ prev, seen, expected }) => {
    expect(judgeReplica(prev, seen, 3)).toEqual(expected);
  });

  test('property: a running replica is lost exactly after `threshold` failed probes in a row', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 50 }), fc.integer({ min: 1, max: 10 }), (probes, threshold) => {
        let failures = 0;
        let lostAt = -1;
        probes.forEach((ok, i) => {
          if (lostAt >= 0) return;
          const j = judgeReplica(failures, { running: true, probeOk: ok }, threshold);
          failures = j.failures;
          if (j.lost) lostAt = i;
        });
        let run = 0;
        let expected = -1;
        probes.forEach((ok, i) => {
          if (expected >= 0) return;
          run = ok ? 0 : run + 1;
          if (run >= threshold) expected = i;
        });
        expect(lostAt).toBe(expected);
      }),
    );
  });
});

test('markLost marks READY replicas FAILED with the reason, and leaves others alone', () => {
  const replicas = [
    { id: 'a', status: 'READY' },
    { id: 'b', status: 'READY' },
    { id: 'c', status: 'SHUTTING_DOWN' },
  ];
  expect(markLost(replicas, [{ replicaId: 'b', reason: 'stopped (exit code 137)' }, { replicaId: 'c', reason: 'stopped' }])).toEqual([
    { id: 'a', status: 'READY' },
    { id: 'b', status: 'FAILED', message: 'stopped (exit code 137)' },
    { id: 'c', status: 'SHUTTING_DOWN' },
  ]);
});

test.each([
  [0, 0],
  [1, 10_000],
  [2, 20_000],
  [3, 40_000],
  [6, 300_000],
  [50, 300_000],
])('healingBackoffMs(%d) = %d', (n, ms) => {
  expect(healingBackoffMs(n)).toBe(ms);
});

test.each([
  ['2 READY of v1', [{ version: 1, status: 'READY' }, { version: 1, status: 'READY' }], true],
  ['one lost', [{ version: 1, status: 'READY' }], false],
  ['one FAILED', [{ version: 1, status: 'READY' }, { version: 1, status: 'FAILED' }], false],
  ['mixed versions after a failed rollback', [{ version: 1, status: 'READY' }, { version: 2, status: 'READY' }], false],
  ['one too many', [{ version: 1, status: 'READY' }, { version: 1, status: 'READY' }, { version: 1, status: 'READY' }], false],
])('isWhole: %s → %p', (_name, replicas, whole) => {
  expect(isWhole(replicas, 1, 2)).toBe(whole);
});
