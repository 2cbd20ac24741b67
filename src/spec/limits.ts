/**
 * Upper bounds on what a spec may ask for. Each one is far above what a real service needs and
 * low enough that nothing downstream can break on it: a process environment that the kernel
 * refuses (spawn E2BIG: one string may be at most 128 KiB, all of them together about 2 MiB),
 * a plan or a workflow history that grows without end, a timer Temporal cannot hold. Pure.
 */
export const SPEC_LIMITS = {
  /** The spec file itself. */
  specBytes: 1024 * 1024,
  /** YAML aliases in one document (a "billion laughs" document has millions once expanded). */
  yamlAliases: 100,
  replicas: 1000,
  /** GPUs per replica (the largest GPU servers have 8 or 16). */
  acceleratorCount: 16,
  envEntries: 256,
  /** One `env` value; the kernel's own limit per string is 128 KiB. */
  envValueBytes: 32 * 1024,
  /** Every `env` name and value together, plus `run`: well below the kernel's ~2 MiB. */
  envTotalBytes: 256 * 1024,
  runBytes: 64 * 1024,
  /** Paths, instance types, accelerator names. */
  shortText: 256,
  steps: 100,
  /** rollout.timeout and a timed pause. */
  durationMs: 30 * 86_400_000,
  /** readiness_probe.initial_delay_seconds: a week to load a model. */
  initialDelaySeconds: 7 * 86_400,
  /** readiness_probe.period_seconds and timeout_seconds. */
  probeSeconds: 3600,
  failureThreshold: 1000,
  /** rollout.analysis.min_requests. */
  minRequests: 1_000_000_000,
  failureLimit: 1000,
} as const;

/** Byte length of a string as UTF-8 (what the kernel counts); no Buffer, so workflows may use it. */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
}
