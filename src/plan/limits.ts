/**
 * Surge and unavailability limits, with Kubernetes' rounding: a percent surge rounds UP, a
 * percent unavailability rounds DOWN (of `replicas`).
 *
 *   replicas 4,  surge 25%, unavailable 25% → surge 1, unavailable 1
 *   replicas 10, surge 25%, unavailable 25% → surge 3, unavailable 2
 *   replicas 3,  surge 1,   unavailable "0%" → surge 1, unavailable 0
 *   replicas 1,  surge 0,   unavailable 10% → surge 0, unavailable 0   (rejected by the spec: no progress possible)
 */
import type { Quantity } from '../spec/types';
import type { RolloutLimits } from './types';

/** A count, or a percent string of `total`, rounded the given way. */
export function parseQuantity(q: Quantity, total: number, round: 'up' | 'down'): number {
  if (typeof q === 'number') return q;
  const pct = Number(q.replace('%', ''));
  const exact = (pct * total) / 100;
  // Guard against float noise (e.g. 29% of 100 = 28.999999…).
  const fixed = Math.round(exact * 1e9) / 1e9;
  return round === 'up' ? Math.ceil(fixed) : Math.floor(fixed);
}

export function resolveLimits(replicas: number, maxSurge: Quantity, maxUnavailable: Quantity): RolloutLimits {
  return {
    maxSurge: parseQuantity(maxSurge, replicas, 'up'),
    maxUnavailable: Math.min(replicas, parseQuantity(maxUnavailable, replicas, 'down')),
  };
}
