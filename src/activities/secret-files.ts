/**
 * Reading a `{from_file: /path}` secret on the worker. Whoever may deploy may name any path, so
 * what can be named is bounded: never the worker's own state dir (it holds the router's admin
 * token and the replicas' records) or its router token file, and, when ROLLOUT_SECRET_DIRS is set, only files inside
 * those directories (symbolic links resolved first, so a link cannot point out of them).
 */
import fs from 'node:fs';
import path from 'node:path';
import { readBoundedFileSync } from '../spec/read-file';

/** A secret file holds a token or a key: at most this much of it. */
export const SECRET_FILE_MAX_BYTES = 64 * 1024;

export interface SecretFilePolicy {
  /** Directories from_file may read in (absolute, resolved); undefined: any the worker can read. */
  allowedDirs?: string[];
  /** Directories from_file may never read in (the worker's state dir). */
  deniedDirs?: string[];
  /** Files from_file may never read (the router token file, wherever it is). */
  deniedFiles?: string[];
}

function sameFile(a: string, b: string): boolean {
  try {
    const [sa, sb] = [fs.statSync(a), fs.statSync(b)];
    return sa.dev === sb.dev && sa.ino === sb.ino;
  } catch {
    return false;
  }
}

const inside = (file: string, dir: string): boolean => file === dir || file.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);

function failure(why: string): Error {
  // `code` is what SecretUnavailableError shows after the path.
  return Object.assign(new Error(why), { code: why });
}

/**
 * A `from_file` secret, read bounded: a FIFO would block the worker's thread until someone writes
 * to it, and /dev/urandom would be read until memory runs out; either fails the launch instead.
 */
export function readSecretFile(file: string, policy: SecretFilePolicy = {}): string {
  if (!path.isAbsolute(file)) throw failure('expected an absolute path');
  const outside = (p: string): boolean => policy.allowedDirs !== undefined && !policy.allowedDirs.some((d) => inside(p, d));
  const outsideError = () => failure(`it is outside ROLLOUT_SECRET_DIRS (${policy.allowedDirs?.join(':')})`);
  // The path as written first: a file outside the allowed dirs is refused before anything is
  // looked up, so a deployer cannot probe which files exist elsewhere (ENOENT or not).
  if (outside(path.resolve(file))) throw outsideError();
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch (err) {
    throw failure((err as NodeJS.ErrnoException).code ?? 'cannot resolve it');
  }
  if (outside(real)) throw outsideError(); // a link out of the allowed dirs
  if (policy.deniedDirs?.some((d) => inside(real, d))) throw failure("it is in the worker's own state dir");
  // By inode too: a hard link to the token file elsewhere is the same file under another name.
  if (policy.deniedFiles?.some((denied) => denied === real || sameFile(denied, real))) throw failure("it is the worker's router token file");
  const read = readBoundedFileSync(real, SECRET_FILE_MAX_BYTES);
  if (read.ok) return read.bytes.toString('utf8');
  throw failure('notRegular' in read ? `it is ${read.notRegular}, not a regular file` : 'tooLarge' in read ? `it is larger than ${SECRET_FILE_MAX_BYTES / 1024} KiB` : read.code);
}

/**
 * ROLLOUT_SECRET_DIRS: colon-separated absolute directories, each resolved. Throws a one-line
 * message naming the setting for an entry that is not an existing directory.
 */
export function secretDirsFrom(value: string | undefined): string[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  return value.split(':').filter((d) => d !== '').map((dir) => {
    if (!path.isAbsolute(dir)) throw new Error(`ROLLOUT_SECRET_DIRS: expected absolute directory paths separated by ":", got "${dir}"`);
    let real: string;
    try {
      real = fs.realpathSync(dir);
    } catch (err) {
      throw new Error(`ROLLOUT_SECRET_DIRS: ${dir}: ${(err as NodeJS.ErrnoException).code ?? 'cannot resolve it'}`);
    }
    if (!fs.statSync(real).isDirectory()) throw new Error(`ROLLOUT_SECRET_DIRS: ${dir} is not a directory`);
    return real;
  });
}
