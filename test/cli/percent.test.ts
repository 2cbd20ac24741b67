/** The CLI's percent argument (set-canary, deploy --canary-percent): whole decimal percents only. */
import { parsePercent } from '../../src/cli/commands/control';
import { CliError, ExitCode } from '../../src/cli/errors';

test.each([
  ['30', 30],
  ['30%', 30],
  ['0', 0],
  ['100', 100],
  [' 7 ', 7],
])('%j → %d', (text, percent) => {
  expect(parsePercent(text)).toBe(percent);
});

test.each(['1e1', '0x20', '2.5', '-1', '101', '150', '', 'lots', '30%%', '1_0', 'Infinity', '0030'])('%j is refused (exit 2), saying what is expected', (text) => {
  let err: unknown;
  try {
    parsePercent(text);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CliError);
  expect((err as CliError).exitCode).toBe(ExitCode.invalidInput);
  expect((err as Error).message).toMatch(/expected a whole percent from 0 to 100 in decimal digits \(e\.g\. 30 or 30%\), got /);
});
