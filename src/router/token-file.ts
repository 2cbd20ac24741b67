/**
 * The router's admin token from ROUTER_TOKEN_FILE (a compose or Kubernetes secret file), read
 * the same way by the worker and by `rollout router`: a regular file of at most 4 KiB, trimmed,
 * not empty. A file keeps the token out of the process's environment (`docker inspect`, `ps e`).
 */
import { readBoundedFileSync } from '../spec/read-file';

export const ROUTER_TOKEN_FILE_MAX_BYTES = 4096;

/** The token, or why the file cannot give one (said after `ROUTER_TOKEN_FILE <file>: `). */
export function readRouterTokenFile(file: string): { ok: true; token: string } | { ok: false; why: string } {
  const read = readBoundedFileSync(file, ROUTER_TOKEN_FILE_MAX_BYTES);
  if (!read.ok) {
    const why =
      'notRegular' in read
        ? `expected a regular file holding the router's admin token, it is ${read.notRegular}`
        : 'tooLarge' in read
          ? `expected a file of at most ${ROUTER_TOKEN_FILE_MAX_BYTES} bytes holding the router's admin token`
          : `cannot read it (${read.code})`;
    return { ok: false, why };
  }
  const token = read.bytes.toString('utf8').trim();
  return token ? { ok: true, token } : { ok: false, why: 'the file is empty' };
}
