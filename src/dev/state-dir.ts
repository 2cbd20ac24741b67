/**
 * A state dir (`rollout dev --state-dir`, the worker's ROLLOUT_STATE_DIR) is checked before
 * anything is written to it: it must be a directory, or creatable as one, and files must be
 * creatable in it. Each problem is one line naming the setting and what is wrong.
 *
 * Missing directories are created one level at a time: `fs.mkdirSync(dir, {recursive: true})`
 * never returns under /proc (Node retries the ENOENT it gets there forever). Writability is
 * proven by creating a file: access(W_OK) says yes to root where nothing can be created (/proc).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileKind } from '../spec/read-file';

export class StateDirError extends Error {}

const WHY: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENOENT: 'the file system does not allow it',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'too many symbolic links',
};

const why = (err: unknown): string => {
  const code = (err as NodeJS.ErrnoException).code;
  return code ? `${WHY[code] ?? 'failed'}, ${code}` : String(err);
};

/** Makes sure `dir` is a directory this process can create files in; returns its absolute path. `setting` names it in messages. */
export function prepareStateDir(dir: string, setting: string): string {
  return prepareStateDirUndoably(dir, setting).dir;
}

export interface PreparedStateDir {
  dir: string;
  /** Removes the directories this call created, deepest first, where they are still empty (a refused start leaves nothing behind). */
  undo(): void;
}

export function prepareStateDirUndoably(dir: string, setting: string): PreparedStateDir {
  const fail = (problem: string) => new StateDirError(`${setting} ${dir === '' ? '""' : dir}: ${problem}`);
  if (dir.trim() === '') throw fail('expected a directory path, got an empty one');
  if (dir.includes('\0')) throw fail('expected a directory path without NUL characters');
  const absolute = path.resolve(dir);
  // Walk up to the nearest part that exists; it must be a directory.
  const missing: string[] = [];
  for (let at = absolute; ; ) {
    let st: fs.Stats;
    try {
      st = fs.statSync(at);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const parent = path.dirname(at);
      if ((code === 'ENOENT' || code === 'ENOTDIR') && parent !== at) {
        missing.unshift(at);
        at = parent;
        continue;
      }
      throw fail(`cannot look up ${at} (${why(err)})`);
    }
    if (!st.isDirectory()) throw fail(at === absolute ? `not a directory (it is ${describe(st)})` : `${at} is not a directory (it is ${describe(st)})`);
    break;
  }
  const created: string[] = [];
  const undo = (): void => {
    for (const part of [...created].reverse()) {
      try {
        fs.rmdirSync(part);
      } catch {
        return; // Not empty (something else wrote there meanwhile): leave it and its parents.
      }
    }
  };
  for (const part of missing) {
    try {
      fs.mkdirSync(part);
      created.push(part);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && fs.statSync(part).isDirectory()) continue; // created meanwhile
      undo();
      throw fail(`cannot create the directory ${part} (${why(err)})`);
    }
  }
  const probe = path.join(absolute, `.write-check-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  try {
    fs.writeFileSync(probe, '', { flag: 'wx' });
  } catch (err) {
    undo();
    throw fail(`cannot create files in it (${why(err)})`);
  }
  fs.rmSync(probe, { force: true });
  return { dir: absolute, undo };
}

function describe(st: fs.Stats): string {
  return st.isFile() ? 'a regular file' : fileKind(st);
}
