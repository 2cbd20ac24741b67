/**
 * Which starts a state dir allows (src/dev/persist-mode.ts): a persistent dir refuses an
 * ephemeral start and another db file; any dir accepts its first --persist start.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkPersistMode, defaultDbFilename, markPersistent, PersistModeError, PERSIST_MARKER, recordedDbFilename } from '../../src/dev/persist-mode';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-persist-mode-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a dir never used with --persist: either kind of start is allowed, and it is not yet persistent', () => {
  expect(checkPersistMode(dir, undefined)).toEqual({ wasPersistent: false });
  expect(checkPersistMode(dir, defaultDbFilename(dir))).toEqual({ wasPersistent: false });
  expect(recordedDbFilename(dir)).toBeUndefined();
});

test('once marked: --persist on the same db file adopts; without --persist or on another file it is refused, naming what to do', () => {
  const db = defaultDbFilename(dir);
  markPersistent(dir, db);
  expect(recordedDbFilename(dir)).toBe(db);
  expect(checkPersistMode(dir, db)).toEqual({ wasPersistent: true });
  expect(checkPersistMode(dir, path.join(dir, '.', 'temporal.db'))).toEqual({ wasPersistent: true });
  expect(() => checkPersistMode(dir, undefined)).toThrow(new PersistModeError(`--state-dir ${dir} belongs to a persistent stack (its rollouts are in ${db}, its replicas may be serving): start it with --persist, or give this one another --state-dir`));
  const other = path.join(dir, 'other.db');
  expect(() => checkPersistMode(dir, other)).toThrow(/^--db-filename .*other\.db: the state dir .* keeps its rollouts in .*temporal\.db/);
});

test('a marker that is not ours is refused rather than trusted', () => {
  fs.writeFileSync(path.join(dir, PERSIST_MARKER), 'not json');
  expect(() => checkPersistMode(dir, undefined)).toThrow(/persist\.json is not a marker this program wrote/);
  fs.writeFileSync(path.join(dir, PERSIST_MARKER), '{"dbFilename": ""}');
  expect(() => checkPersistMode(dir, defaultDbFilename(dir))).toThrow(PersistModeError);
});
