/**
 * Bad input found by trying the merged features as a new user would (issue 12's hostile pass):
 * each case is one the code got wrong before its fix.
 */
import { observabilitySettingsFrom } from '../../src/observability/settings';

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
