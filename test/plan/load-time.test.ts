/** Load-time bounds learned from readiness probes (src/plan/load-time.ts): examples and properties. */
import fc from 'fast-check';
import { extraProbesAt, learnLoadTime, type LoadTimeBounds } from '../../src/plan/load-time';

describe('learnLoadTime', () => {
  test.each([
    ['first replica', undefined, { readyAtMs: 5400, notReadyAtMs: 4600 }, { atMost: 5400, above: 4600 }],
    ['first replica, ready at the first probe', undefined, { readyAtMs: 0 }, { atMost: 0 }],
    ['narrowed from both sides', { atMost: 5400, above: 4600 }, { readyAtMs: 5100, notReadyAtMs: 4900 }, { atMost: 5100, above: 4900 }],
    ['a wider observation changes nothing', { atMost: 5100, above: 4900 }, { readyAtMs: 6000, notReadyAtMs: 4000 }, { atMost: 5100, above: 4900 }],
    ['crossing bounds (load times vary): only the upper one', { atMost: 5100, above: 4900 }, { readyAtMs: 6000, notReadyAtMs: 5500 }, { atMost: 5100 }],
  ] as [string, LoadTimeBounds | undefined, { readyAtMs: number; notReadyAtMs?: number }, LoadTimeBounds][])('%s', (_name, known, seen, want) => {
    expect(learnLoadTime(known, seen)).toEqual(want);
  });
});

describe('extraProbesAt', () => {
  test.each([
    ['nothing known', undefined, []],
    ['an upper bound only', { atMost: 5100 }, [5100]],
    ['bounds apart: midway, then the upper', { atMost: 5400, above: 4600 }, [5000, 5400]],
    ['bounds within 20 ms: the upper', { atMost: 5010, above: 5000 }, [5010]],
    ['ready at once: none', { atMost: 0 }, []],
  ] as [string, LoadTimeBounds | undefined, number[]][])('%s', (_name, known, want) => {
    expect(extraProbesAt(known)).toEqual(want);
  });
});

test('with one load time, the bounds always contain it, and the extra probes lie within them', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 600_000 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 1, max: 5_000 })), { minLength: 1, maxLength: 20 }),
      (load, probes) => {
        let known: LoadTimeBounds | undefined;
        let last = Infinity;
        for (const [early, late] of probes) {
          // A probe `early` ms before the load time saw it not ready, one `late` ms after saw it ready.
          known = learnLoadTime(known, { readyAtMs: load + late, notReadyAtMs: Math.max(0, load - early - 1) });
          expect(known.atMost).toBeGreaterThanOrEqual(load);
          expect(known.atMost).toBeLessThanOrEqual(last);
          last = known.atMost;
          if (known.above !== undefined) expect(known.above).toBeLessThan(load);
          for (const at of extraProbesAt(known)) expect(at).toBeLessThanOrEqual(known.atMost);
        }
      },
    ),
  );
});
