/**
 * Passive health: a backend that refused connections `threshold` times in a row is left out
 * of rotation for a cooldown that doubles each time (1 s … 30 s); after it, one request may
 * try it again, and an answer clears the record.
 */
export class Ejections {
  private readonly state = new Map<string, { failures: number; until: number; cooldownMs: number }>();

  constructor(
    private readonly threshold = 3,
    private readonly baseCooldownMs = 1_000,
    private readonly maxCooldownMs = 30_000,
  ) {}

  connectFailed(replicaId: string, now = Date.now()): void {
    const s = this.state.get(replicaId) ?? { failures: 0, until: 0, cooldownMs: this.baseCooldownMs / 2 };
    s.failures += 1;
    if (s.failures >= this.threshold) {
      s.cooldownMs = Math.min(this.maxCooldownMs, s.cooldownMs * 2);
      s.until = now + s.cooldownMs;
      s.failures = this.threshold - 1; // after the cooldown, one more refusal ejects again
    }
    this.state.set(replicaId, s);
  }

  answered(replicaId: string): void {
    this.state.delete(replicaId);
  }

  /** Replica ids out of rotation right now. */
  ejected(now = Date.now()): Set<string> {
    const out = new Set<string>();
    for (const [id, s] of this.state) if (s.until > now) out.add(id);
    return out;
  }
}
