/**
 * Smooth weighted round-robin (nginx's algorithm): deterministic and evenly interleaved —
 * weights 3:1 give a a b a | a a b a … never a long run of one backend.
 */
import type { Backend } from './types';

export class WeightedPicker {
  private current = new Map<string, number>();

  constructor(private readonly backends: Backend[]) {}

  /** The next backend among those with weight > 0 and not in `exclude`, or undefined. */
  pick(exclude: ReadonlySet<string> = new Set()): Backend | undefined {
    let total = 0;
    let best: Backend | undefined;
    let bestScore = -Infinity;
    for (const b of this.backends) {
      if (b.weight <= 0 || exclude.has(b.replicaId)) continue;
      const score = (this.current.get(b.replicaId) ?? 0) + b.weight;
      this.current.set(b.replicaId, score);
      total += b.weight;
      if (score > bestScore) {
        bestScore = score;
        best = b;
      }
    }
    if (best) this.current.set(best.replicaId, bestScore - total);
    return best;
  }
}
