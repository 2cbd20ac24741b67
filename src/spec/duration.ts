/**
 * Durations as people write them in specs: "90s", "10m", "2h", "1h30m", "500ms", "1d".
 * Pure (used inside workflows).
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;
const WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;

/** Milliseconds of a duration string; throws on anything else. */
export function parseDurationMs(text: string): number {
  const s = String(text).trim();
  if (!WHOLE.test(s)) throw new Error(`expected a duration like "90s", "10m", "2h" or "1h30m", got ${JSON.stringify(text)}`);
  let total = 0;
  for (const [, amount, unit] of s.matchAll(PART)) total += Number(amount) * UNIT_MS[unit];
  return total;
}

/** "2h", "1h30m", "45s": the shortest exact form. */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  let rest = Math.round(ms / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join('');
}
