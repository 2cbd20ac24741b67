/**
 * Which kind of stack a state dir belongs to. `rollout dev --persist` marks its state dir with
 * `persist.json` (the SQLite file Temporal keeps its state in); the marker decides what a later
 * start on the same dir may do:
 *
 *   - persistent dir, `--persist` (same db file): adopt what is there (replicas, route table,
 *     rollouts in flight);
 *   - persistent dir, no `--persist`: refused. An ephemeral start terminates every replica it
 *     finds and forgets the route table: on a box whose replicas serve production, a forgotten
 *     flag must not do that;
 *   - persistent dir, `--persist --db-filename` naming another file: refused. The replicas and
 *     the route table belong to the rollouts in the recorded file;
 *   - a dir used without `--persist` (or never), `--persist`: what an ephemeral run left (only a
 *     killed one leaves anything) is cleaned up as an ephemeral start would, then the dir is
 *     marked persistent. Nothing of an ephemeral run can be adopted: its Temporal is gone.
 *
 * Pure file handling, no process is touched here.
 */
import fs from 'node:fs';
import path from 'node:path';

export const PERSIST_MARKER = 'persist.json';

interface PersistMarker {
  dbFilename: string;
  since: string;
}

/** A start that would mix a persistent state dir with an ephemeral stack (or another db file). */
export class PersistModeError extends Error {}

/** The db file recorded in the state dir's marker, or undefined when the dir is not persistent. */
export function recordedDbFilename(stateDir: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(stateDir, PERSIST_MARKER), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PersistModeError(`--state-dir ${stateDir}: cannot read ${PERSIST_MARKER} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    const marker = JSON.parse(text) as Partial<PersistMarker>;
    if (typeof marker.dbFilename === 'string' && marker.dbFilename !== '') return marker.dbFilename;
  } catch {
    // fall through: not what we wrote
  }
  throw new PersistModeError(`--state-dir ${stateDir}: ${path.join(stateDir, PERSIST_MARKER)} is not a marker this program wrote (expected JSON with "dbFilename")`);
}

/**
 * Checks that a start in this mode may use the state dir; `dbFilename` is the absolute db file
 * of a `--persist` start, undefined for an ephemeral one. Returns whether the dir was persistent
 * already (false: a `--persist` start must clean up an ephemeral run's leftovers first).
 */
export function checkPersistMode(stateDir: string, dbFilename: string | undefined): { wasPersistent: boolean } {
  const recorded = recordedDbFilename(stateDir);
  if (recorded === undefined) return { wasPersistent: false };
  if (dbFilename === undefined) {
    throw new PersistModeError(
      `--state-dir ${stateDir} belongs to a persistent stack (its rollouts are in ${recorded}, its replicas may be serving): start it with --persist, or give this one another --state-dir`,
    );
  }
  if (path.resolve(recorded) !== path.resolve(dbFilename)) {
    throw new PersistModeError(`--db-filename ${dbFilename}: the state dir ${stateDir} keeps its rollouts in ${recorded} (its replicas and route table belong to them); give that file, or another --state-dir`);
  }
  return { wasPersistent: true };
}

/** Marks the state dir persistent, with its db file (atomically: a crash leaves the old marker or the new one). */
export function markPersistent(stateDir: string, dbFilename: string): void {
  const target = path.join(stateDir, PERSIST_MARKER);
  const tmp = `${target}.${process.pid}.tmp`;
  const marker: PersistMarker = { dbFilename: path.resolve(dbFilename), since: new Date().toISOString() };
  fs.writeFileSync(tmp, JSON.stringify(marker, null, 2) + '\n');
  fs.renameSync(tmp, target);
}

/** The db file of a `--persist` start: the flag's, or `temporal.db` in the state dir. */
export function defaultDbFilename(stateDir: string): string {
  return path.join(stateDir, 'temporal.db');
}
