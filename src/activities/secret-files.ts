/**
 * Reading a `{from_file: /path}` secret on the worker. Whoever may deploy may name any path, so
 * what can be named is bounded: never a file of the worker's own state dir (it holds the router's
 * admin token and the replicas' records) or its router token file, and, when ROLLOUT_SECRET_DIRS
 * is set, only files inside those directories.
 *
 * The checks are made on the file as opened (its descriptor's path in /proc and its inode), not
 * on the name given: a symbolic link, a hard link or a bind mount cannot point past them, and a
 * link swapped in between a check and the read changes nothing. With ROLLOUT_SECRET_DIRS set, a
 * missing file and a file outside get the same answer, so a deployer cannot probe which files
 * exist elsewhere.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readBoundedFileSync } from '../spec/read-file';

/** A secret file holds a token or a key: at most this much of it. */
export const SECRET_FILE_MAX_BYTES = 64 * 1024;

export interface SecretFilePolicy {
  /** Directories from_file may read in (absolute, resolved); undefined: any the worker can read. */
  allowedDirs?: string[];
  /** Directories none of whose files from_file may read (the worker's state dir). */
  deniedDirs?: string[];
  /** Files from_file may never read (the router token file, wherever it is). */
  deniedFiles?: string[];
}

/** Files looked at, at most, when listing a denied dir's inodes (a state dir holds a few hundred). */
const DENIED_DIR_FILES_MAX = 20_000;

const inside = (file: string, dir: string): boolean => file === dir || file.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);
const inodeKey = (st: fs.Stats): string => `${st.dev}:${st.ino}`;

function failure(why: string): Error {
  // `code` is what SecretUnavailableError shows after the path.
  return Object.assign(new Error(why), { code: why });
}

/** The inode of every file under `dir` (symbolic links not followed), up to a bound. */
function inodesUnder(dir: string, into: Set<string>): void {
  const pending = [dir];
  let seen = 0;
  while (pending.length > 0 && seen < DENIED_DIR_FILES_MAX) {
    const at = pending.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(at, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      seen += 1;
      const p = path.join(at, e.name);
      if (e.isDirectory()) pending.push(p);
      else if (e.isFile()) {
        try {
          into.add(inodeKey(fs.lstatSync(p)));
        } catch {
          // Gone meanwhile.
        }
      }
    }
  }
}

function inodeOf(file: string): string | undefined {
  try {
    return inodeKey(fs.statSync(file));
  } catch {
    return undefined;
  }
}

/** Where descriptor `fd` really points (Linux); undefined where /proc cannot tell. */
function openedPath(fd: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/**
 * A `from_file` secret, read bounded: a FIFO would block the worker's thread until someone writes
 * to it, and /dev/urandom would be read until memory runs out; either fails the launch instead.
 */
export function readSecretFile(file: string, policy: SecretFilePolicy = {}): string {
  if (!path.isAbsolute(file)) throw failure('expected an absolute path');
  const allowed = policy.allowedDirs;
  const insideAllowed = (p: string): boolean => allowed === undefined || allowed.some((d) => inside(p, d));
  const notInside = () => failure(`it is not a readable file inside ROLLOUT_SECRET_DIRS (${allowed?.join(':')})`);
  // The name as written first: outside, nothing is even opened.
  if (!insideAllowed(path.resolve(file))) throw notInside();

  const tokenInodes = new Set((policy.deniedFiles ?? []).flatMap((f) => inodeOf(f) ?? []));
  const stateInodes = new Set<string>();
  for (const d of policy.deniedDirs ?? []) inodesUnder(d, stateInodes);

  const read = readBoundedFileSync(file, SECRET_FILE_MAX_BYTES, (fd, st) => {
    const opened = openedPath(fd);
    if (allowed !== undefined && (opened === undefined || !insideAllowed(opened))) return 'outside';
    if (tokenInodes.has(inodeKey(st))) return 'token';
    if (stateInodes.has(inodeKey(st)) || (opened !== undefined && policy.deniedDirs?.some((d) => inside(opened, d)))) return 'state';
    return undefined;
  });
  if (read.ok) {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(read.bytes);
    } catch {
      // An environment value is text: bytes that are not UTF-8 would reach the replica changed.
      throw failure('it is not UTF-8 text');
    }
  }
  if ('code' in read && read.refused !== undefined) {
    if (read.refused === 'outside') throw notInside();
    throw failure(read.refused === 'token' ? "it is the worker's router token file" : "it is in the worker's own state dir");
  }
  if ('code' in read && allowed !== undefined) throw notInside(); // missing or unreadable: said as for outside
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
