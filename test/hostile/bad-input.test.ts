/**
 * Bad input found by trying the merged features as a new user would (issue 12's hostile pass):
 * each case is one the code got wrong before its fix.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Supervised } from '../../src/dev/supervised';
import { observabilitySettingsFrom } from '../../src/observability/settings';
import { waitUntil } from '../helpers/wait';

describe('the worker metrics port', () => {
  // "00" passed the digits check and was listened on as port 0: a random port, not "none".
  test.each(['00', '000', '00000'])('%j means no metrics port, like "0"', (value) => {
    expect(observabilitySettingsFrom({ ROLLOUT_METRICS_PORT: value })).toEqual({ logLevel: 'info' });
    expect(observabilitySettingsFrom({ ROLLOUT_METRICS_PORT: '9464' }, { metricsPort: value })).toEqual({ logLevel: 'info' });
  });

  test('a port with leading zeros is that port', () => {
    expect(observabilitySettingsFrom({}, { metricsPort: '09464' }).metrics?.port).toBe(9464);
  });
});

describe('a supervised server restarted only once it has been up', () => {
  // `rollout dev --persist --db-filename <a file that is not SQLite>`: Temporal exits at once; it
  // was restarted five times (after the stack had already said it failed) before "keeps dying".
  // Now a persistent stack's Temporal starts with restart off and gets restartFromNowOn once up.
  test('restart: false, then restartFromNowOn: a death after it is restarted', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-supervised-'));
    const starts: number[] = [];
    // Lives 1 s: restartFromNowOn below runs in the same tick as start(), long before it dies.
    const child = new Supervised('dies', process.execPath, ['-e', 'setTimeout(() => process.exit(1), 1000)'], {
      logFile: path.join(dir, 'log'),
      restart: false,
      onStart: (pid) => starts.push(pid ?? -1),
    });
    try {
      child.start();
      child.restartFromNowOn();
      await waitUntil(() => starts.length >= 2, 'the restart after its first death', 30_000);
      expect(new Set(starts).size).toBe(starts.length);
    } finally {
      await child.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
