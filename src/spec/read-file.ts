/**
 * A bounded read of a small file a user names (a spec, a token file): only a regular file, and
 * never more than `maxBytes` + 1 bytes of it, whatever its size claims. A character device
 * (`/dev/urandom`), a named pipe, a socket or a directory is refused without being read: each
 * would otherwise be read forever, or block until someone writes to it. The file is opened with
 * O_NONBLOCK, so that opening a FIFO with no writer does not block either, and checked on the
 * open descriptor (no window between the check and the read).
 */
import fs from 'node:fs';

export type BoundedRead =
  | { ok: true; bytes: Buffer }
  /** Not a regular file: what it is instead ("a character device"). */
  | { ok: false; notRegular: string }
  /** More than maxBytes; `size` when the file said so up front. */
  | { ok: false; tooLarge: true; size?: number }
  /** open or read failed: the errno code (ENOENT, EACCES…); or the caller's check of the open file said no (`refused`: its reason). */
  | { ok: false; code: string; refused?: string };

/** Looks at the file as opened (its descriptor and fstat) before anything is read: a reason to refuse it, or undefined. */
export type OpenFileCheck = (fd: number, st: fs.Stats) => string | undefined;

/** What a non-regular file is, for a message: "a directory", "a character device"… */
export function fileKind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export function readBoundedFileSync(file: string, maxBytes: number, check?: OpenFileCheck): BoundedRead {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (err) {
    return { ok: false, code: (err as NodeJS.ErrnoException).code ?? String(err) };
  }
  try {
    const st = fs.fstatSync(fd);
    const refused = check?.(fd, st);
    if (refused !== undefined) return { ok: false, code: 'REFUSED', refused };
    if (!st.isFile()) return { ok: false, notRegular: fileKind(st) };
    if (st.size > maxBytes) return { ok: false, tooLarge: true, size: st.size };
    // Read to the end, but at most one byte past the limit: a file can grow, and files in /proc say 0.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    while (length < buffer.length) {
      const n = fs.readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > maxBytes) return { ok: false, tooLarge: true };
    return { ok: true, bytes: buffer.subarray(0, length) };
  } catch (err) {
    return { ok: false, code: (err as NodeJS.ErrnoException).code ?? String(err) };
  } finally {
    fs.closeSync(fd);
  }
}
