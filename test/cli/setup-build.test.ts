/**
 * scripts/setup.js skips the TypeScript build when dist/ was built after the last change to
 * what the build reads, and builds otherwise (a fresh clone has no dist/ at all). Checked on a
 * tree of its own with explicit file times: no sleeps, no real build.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const load = createRequire(__filename);
const { buildIsFresh } = load('../../scripts/setup.js') as { buildIsFresh(dir: string): boolean };

let dir: string;
const at = (file: string) => path.join(dir, file);
// An hour ago: whatever a test creates or removes now is newer than the build.
const T0 = new Date(Date.now() - 3_600_000);
const later = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

function setTime(file: string, when: Date): void {
  fs.utimesSync(at(file), when, when);
}

/** A clone whose every input and directory dates from T0. */
function clone(): void {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'setup-build-'));
  for (const file of ['src/cli/main.ts', 'src/spec/load.ts', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json', 'node_modules/.gpu-rollout-setup']) {
    fs.mkdirSync(path.dirname(at(file)), { recursive: true });
    fs.writeFileSync(at(file), '');
  }
  for (const p of ['src/cli/main.ts', 'src/spec/load.ts', 'src/cli', 'src/spec', 'src', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json', 'node_modules/.gpu-rollout-setup']) setTime(p, T0);
}

/** dist/ as setup leaves it after a build that started at `when`. */
function built(when: Date): void {
  fs.mkdirSync(at('dist/cli'), { recursive: true });
  fs.writeFileSync(at('dist/cli/main.js'), '');
  fs.writeFileSync(at('dist/.gpu-rollout-build'), '');
  setTime('dist/.gpu-rollout-build', when);
}

beforeEach(clone);
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a fresh clone (no dist/) is built', () => {
  expect(buildIsFresh(dir)).toBe(false);
});

test('dist/ from a tsc run outside setup (no stamp) is built again once', () => {
  fs.mkdirSync(at('dist/cli'), { recursive: true });
  fs.writeFileSync(at('dist/cli/main.js'), '');
  expect(buildIsFresh(dir)).toBe(false);
});

test('nothing changed since the build: skipped', () => {
  built(later(10));
  expect(buildIsFresh(dir)).toBe(true);
});

test.each([
  ['a source edited', () => setTime('src/spec/load.ts', later(20))],
  ['a source added', () => fs.writeFileSync(at('src/spec/new.ts'), '')],
  ['a source removed', () => fs.rmSync(at('src/spec/load.ts'))],
  ['tsconfig.build.json edited', () => setTime('tsconfig.build.json', later(20))],
  ['the lock file changed', () => setTime('package-lock.json', later(20))],
  ['the dependencies reinstalled', () => setTime('node_modules/.gpu-rollout-setup', later(20))],
  ['dist/ removed', () => fs.rmSync(at('dist'), { recursive: true })],
  ['the entry point removed from dist/', () => fs.rmSync(at('dist/cli/main.js'))],
])('%s after the build: built again', (_what, change) => {
  built(later(10));
  change();
  expect(buildIsFresh(dir)).toBe(false);
});

test('a source saved while the build ran (after it started) is built again', () => {
  built(later(10));
  setTime('src/cli/main.ts', later(11));
  expect(buildIsFresh(dir)).toBe(false);
});
