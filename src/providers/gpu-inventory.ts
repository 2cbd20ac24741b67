/**
 * GPU inventory of this host: detection with nvidia-smi and a pure allocator over indices.
 */
import { execFile } from 'node:child_process';

const DETECT_TIMEOUT_MS = 5000;

/**
 * GPU indices as nvidia-smi reports them (`[0, 1, …]`); `[]` when nvidia-smi is missing, fails,
 * or does not answer within 5 s — a host without a usable driver has no GPU to hand out.
 */
export function detectGpus(): Promise<number[]> {
  return new Promise((resolve) => {
    execFile(
      'nvidia-smi',
      ['--query-gpu=index', '--format=csv,noheader'],
      { timeout: DETECT_TIMEOUT_MS, windowsHide: true },
      (err, stdout) => {
        if (err) return resolve([]);
        resolve(parseGpuIndices(stdout));
      },
    );
  });
}

/** `"0\n1\n"` → `[0, 1]`; lines that are not integers (warnings, blank lines) are skipped. */
export function parseGpuIndices(output: string): number[] {
  const indices = output
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
  return [...new Set(indices)].sort((a, b) => a - b);
}

/**
 * The `count` lowest indices of `total` that no entry of `held` holds, or undefined when fewer
 * are free. Examples: total [0,1,2,3], held [[1]], count 2 → [0, 2]; count 0 → [].
 */
export function allocateGpus(total: number[], held: number[][], count: number): number[] | undefined {
  const taken = new Set(held.flat());
  const free = [...total].sort((a, b) => a - b).filter((index) => !taken.has(index));
  return free.length >= count ? free.slice(0, count) : undefined;
}
