/**
 * The instance's user data: a bash script that cloud-init runs once, as root, at first boot. It
 * exports the spec's `env`, then the replica's identity (`PORT`, `REPLICA_ID`, `SERVICE_NAME`,
 * `SERVICE_VERSION`, which the spec cannot override, as on the local provider), and execs the
 * spec's `run` with bash. The server must listen on 0.0.0.0:$PORT (its instance's address).
 *
 * Every value is single-quoted, so bash sees exactly the bytes given, whatever they hold
 * (quotes, `$(…)`, newlines, backslashes): `'` + value with each `'` as `'\''` + `'`. Values
 * never hold NUL (the spec refuses them). No secret value may reach this function: user data is
 * readable by anyone allowed ec2:DescribeInstanceAttribute (the spec refuses secret references
 * on aws). Pure.
 *
 *   renderUserData({ run: 'serve --port $PORT', env: { A: "it's" }, identity: { PORT: '8000', … } })
 *   → #!/bin/bash
 *     …
 *     export A='it'\''s'
 *     export PORT='8000'
 *     …
 *     exec /bin/bash -c 'serve --port $PORT'
 */

/** EC2 refuses user data above 16 KiB (before base64). */
export const USER_DATA_MAX_BYTES = 16 * 1024;

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A bash word that is exactly `value`. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

export interface UserDataInput {
  run: string;
  env: Record<string, string>;
  identity: { PORT: string; REPLICA_ID: string; SERVICE_NAME: string; SERVICE_VERSION: string };
}

const comment = (text: string) => text.replace(/[^\w.:-]/g, '_');

export function renderUserData(input: UserDataInput): string {
  const exports = (vars: Record<string, string>) =>
    Object.entries(vars).map(([name, value]) => {
      if (!NAME.test(name)) throw new Error(`not an environment variable name: ${JSON.stringify(name)}`);
      if (value.includes('\0')) throw new Error(`${name}: a value cannot hold a NUL character`);
      return `export ${name}=${shellQuote(value)}`;
    });
  if (input.run.includes('\0')) throw new Error('run: a command cannot hold a NUL character');
  return [
    '#!/bin/bash',
    `# gpu-rollout replica ${comment(input.identity.REPLICA_ID)} (service ${comment(input.identity.SERVICE_NAME)}, version ${comment(input.identity.SERVICE_VERSION)}); runs once, at first boot`,
    ': "${HOME:=/root}"; export HOME',
    'cd /',
    ...exports(input.env),
    ...exports(input.identity),
    `exec /bin/bash -c ${shellQuote(input.run)}`,
    '',
  ].join('\n');
}
