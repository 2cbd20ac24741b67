/** User data: bash sees exactly the values given, whatever they hold; identity wins over the spec's env. */
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { clientToken, CLIENT_TOKEN_MAX } from '../../src/providers/aws/client-token';
import { renderUserData, shellQuote } from '../../src/providers/aws/user-data';

const identity = { PORT: '8000', REPLICA_ID: 'llm-v1-r1', SERVICE_NAME: 'llm', SERVICE_VERSION: '1' };

/** Runs the script with bash, the run command replaced by one that prints the variables NUL-separated. */
function runScript(env: Record<string, string>, names: string[]): string[] {
  const run = names.length ? `printf '%s\\0' ${names.map((n) => `"$${n}"`).join(' ')}` : 'true';
  const script = renderUserData({ run, env, identity });
  const out = spawnSync('/bin/bash', ['-c', script], { env: { PATH: '/usr/bin:/bin' }, encoding: 'buffer' });
  if (out.status !== 0) throw new Error(`bash failed: ${out.stderr.toString()}`);
  return out.stdout.toString('utf8').split('\0').slice(0, -1);
}

const value = fc.string({ unit: 'binary', maxLength: 200 }).filter((s) => !s.includes('\0'));
/** Variables bash sets or guards itself (readonly, dynamic, or read at start-up): not what a spec would pass. */
const BASH_OWN = new Set(
  ('PATH HOME PWD OLDPWD SHLVL IFS ENV BASH_ENV BASHOPTS SHELLOPTS BASHPID BASH_ARGV0 BASH_COMMAND BASH_SUBSHELL BASH_VERSINFO BASH_VERSION ' +
    'BASH_XTRACEFD PS4 UID EUID PPID GROUPS RANDOM SRANDOM SECONDS LINENO EPOCHSECONDS EPOCHREALTIME HISTCMD FUNCNAME DIRSTACK OPTIND POSIXLY_CORRECT ' +
    'BASH_COMPAT EXECIGNORE GLOBIGNORE CDPATH LC_ALL LC_CTYPE LANG _').split(' '),
);
const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,15}$/).filter((n) => !(n in identity) && !BASH_OWN.has(n) && !n.startsWith('BASH'));


describe('user data', () => {
  test('bash sees the exact value of every variable (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(name, value, { maxKeys: 6 }), (env) => {
        const names = Object.keys(env);
        expect(runScript(env, names)).toEqual(names.map((n) => Buffer.from(env[n], 'utf8').toString('utf8')));
      }),
      { numRuns: 150 },
    );
  });

  test('hostile values: quotes, command substitution, newlines, backslashes, unicode', () => {
    const env = { A: "it's", B: '$(touch /tmp/pwned) `id` ${HOME}', C: 'two\nlines\r\n', D: '\\\\"\'\'', E: 'ünï €', F: '', G: ' lead and trail ' };
    expect(runScript(env, Object.keys(env))).toEqual(Object.values(env));
  });

  test('PORT and the identity cannot be overridden by the spec\'s env; run is exec\'d with bash', () => {
    const script = renderUserData({ run: 'echo "$PORT $REPLICA_ID"', env: { PORT: '1', REPLICA_ID: 'forged' }, identity });
    const out = spawnSync('/bin/bash', ['-c', script], { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8' });
    expect(out.stdout).toBe('8000 llm-v1-r1\n');
    expect(script.startsWith('#!/bin/bash\n')).toBe(true);
  });

  test('shellQuote is one word for bash (property)', () => {
    fc.assert(
      fc.property(value, (v) => {
        const out = spawnSync('/bin/bash', ['-c', `printf '%s' ${shellQuote(v)}`], { encoding: 'buffer', env: { PATH: '/usr/bin:/bin' } });
        expect(out.stdout.toString('utf8')).toBe(Buffer.from(v, 'utf8').toString('utf8'));
      }),
      { numRuns: 100 },
    );
  });
});

describe('client token', () => {
  test('≤ 64 ASCII characters, deterministic, distinct per attempt and generation (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), fc.string(), fc.string(), (replicaId, attempt, generation) => {
        const t = clientToken(replicaId, attempt, generation);
        expect(t.length).toBeLessThanOrEqual(CLIENT_TOKEN_MAX);
        expect(t).toMatch(/^[A-Za-z0-9._-]*$/);
        expect(clientToken(replicaId, attempt, generation)).toBe(t);
        expect(clientToken(replicaId, `${attempt}x`, generation)).not.toBe(t);
        expect(clientToken(replicaId, attempt, `${generation}x`)).not.toBe(t);
      }),
    );
    expect(clientToken('llm-v2-r3', 'a')).toMatch(/^llm-v2-r3-[0-9a-f]{23}$/);
  });
});
