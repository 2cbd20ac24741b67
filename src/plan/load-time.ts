/**
 * A version's load time, learned from its replicas' readiness probes, so that its next replica
 * is probed when it should be ready instead of up to a period later. Pure: no I/O, no clock.
 */

/** More than `above` (a probe then saw it not ready), at most `atMost` (a probe then saw it ready); ms after the wait began. */
export interface LoadTimeBounds {
  atMost: number;
  above?: number;
}

/** What one replica's wait saw: when a probe saw it ready, and when the last one before saw it not ready. */
export interface ReadinessSeen {
  readyAtMs: number;
  notReadyAtMs?: number;
}

/**
 * The bounds narrowed by one more replica. Replicas of one version load in about the same
 * time; bounds that cross say they vary, and only the upper one is kept.
 */
export function learnLoadTime(known: LoadTimeBounds | undefined, seen: ReadinessSeen): LoadTimeBounds {
  const atMost = Math.min(known?.atMost ?? Infinity, seen.readyAtMs);
  const above = Math.max(known?.above ?? -Infinity, seen.notReadyAtMs ?? -Infinity);
  return above > -Infinity && above < atMost ? { atMost, above } : { atMost };
}

/**
 * The extra probes of the next replica (ms after its wait began): midway between the bounds when
 * they are more than 20 ms apart (so each replica halves them) and at the upper one; none
 * before a replica of the version was ready.
 */
export function extraProbesAt(known: LoadTimeBounds | undefined): number[] {
  if (!known) return [];
  const at = known.above !== undefined && known.atMost - known.above > 20 ? [Math.round((known.above + known.atMost) / 2), known.atMost] : [known.atMost];
  return at.filter((ms) => ms > 0);
}
