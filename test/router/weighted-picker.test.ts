/** Smooth weighted round-robin: worked sequences and exact shares. */
import { WeightedPicker } from '../../src/router/weighted-picker';
import type { Backend } from '../../src/router/types';

const backend = (replicaId: string, weight: number): Backend => ({ replicaId, version: 1, url: `http://${replicaId}`, weight });
const sequence = (picker: WeightedPicker, n: number, exclude?: Set<string>) => Array.from({ length: n }, () => picker.pick(exclude)?.replicaId ?? '-').join('');

test.each([
  // name, weights, the first picks (nginx's published example for 5:1:1 is a a b a c a a)
  ['3:1 gives a a b a, repeating', { a: 3, b: 1 }, 8, 'aabaaaba'],
  ['nginx 5:1:1', { a: 5, b: 1, c: 1 }, 7, 'aabacaa'],
  ['1:1 alternates', { a: 1, b: 1 }, 4, 'abab'],
  ['weight 0 is never picked', { a: 0, b: 2 }, 3, 'bbb'],
  ['no weight at all: nothing', { a: 0 }, 2, '--'],
  ['fractional weights work like integers', { a: 0.75, b: 0.25 }, 8, 'aabaaaba'],
])('%s', (_name, weights, n, expected) => {
  const picker = new WeightedPicker(Object.entries(weights).map(([id, w]) => backend(id, w)));
  expect(sequence(picker, n)).toBe(expected);
});

test.each([
  [{ a: 3, b: 1 }, 400],
  [{ a: 90, b: 10 }, 1000],
  [{ a: 1, b: 2, c: 7 }, 100],
])('weights %p give exact shares over %i picks', (weights, n) => {
  const picker = new WeightedPicker(Object.entries(weights).map(([id, w]) => backend(id, w)));
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const id = picker.pick()!.replicaId;
    counts[id] = (counts[id] ?? 0) + 1;
  }
  const total = Object.values(weights).reduce((s, w) => s + w, 0);
  expect(counts).toEqual(Object.fromEntries(Object.entries(weights).map(([id, w]) => [id, (n * w) / total])));
});

test('excluded backends (already tried, ejected) are skipped without disturbing the others', () => {
  const picker = new WeightedPicker([backend('a', 1), backend('b', 1), backend('c', 1)]);
  expect(sequence(picker, 4, new Set(['b']))).toBe('acac');
  expect(picker.pick(new Set(['a', 'b', 'c']))).toBeUndefined();
});
