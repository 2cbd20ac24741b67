import type { TrafficWeight } from './types';

/**
 * Integer percents of traffic per version (keys are versions), summing to 100, by the
 * largest-remainder method: weights v1 1, v2 2 → { "1": 33, "2": 67 }. No traffic → {}.
 */
export function trafficPercentByVersion(traffic: TrafficWeight[]): Record<string, number> {
  const byVersion = new Map<number, number>();
  for (const t of traffic) if (t.weight > 0) byVersion.set(t.version, (byVersion.get(t.version) ?? 0) + t.weight);
  const total = [...byVersion.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return {};
  const shares = [...byVersion.entries()]
    .sort(([a], [b]) => a - b)
    .map(([version, w]) => ({ version, exact: (w * 100) / total }))
    .map((s) => ({ ...s, floor: Math.floor(s.exact), rest: s.exact - Math.floor(s.exact) }));
  let missing = 100 - shares.reduce((a, s) => a + s.floor, 0);
  for (const s of [...shares].sort((a, b) => b.rest - a.rest || a.version - b.version)) {
    if (missing <= 0) break;
    s.floor += 1;
    missing -= 1;
  }
  return Object.fromEntries(shares.map((s) => [String(s.version), s.floor]));
}
