/** Replica logs: `<stateDir>/logs/<replicaId>.log`, stdout and stderr appended together. */
import fs from 'node:fs';

/** Bytes read from the end of the log: enough for 20 long lines without reading a huge file. */
const TAIL_BYTES = 64 * 1024;

/** The last `lines` lines of a file ('' when it does not exist). */
export async function readTail(file: string, lines: number): Promise<string> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const all = buffer.toString('utf8').replace(/\n+$/, '').split('\n');
    // The first line may be cut mid-way when the file is longer than what we read.
    if (length < size) all.shift();
    return all.slice(-Math.max(0, lines)).join('\n');
  } finally {
    await handle.close();
  }
}
