/**
 * The connection loader (src/temporal/connection-config.ts): the TOML profile file, the TEMPORAL_*
 * variables over it, the flags over both, as Temporal's own tools read them; a bad file, an
 * unknown profile named explicitly or a malformed address is a ConnectionConfigError naming the
 * file or setting (the CLI's exit 2). Every case passes its own environment: nothing of the
 * machine's (no HOME, so no ~/.config/temporalio/temporal.toml) is read.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { temporalTarget } from '../../src/cli/connection';
import { CliError, ExitCode } from '../../src/cli/errors';
import { ConnectionConfigError, defaultConfigFile, describeSettings, loadConnectionConfig, type ConnectionFlags } from '../../src/temporal/connection-config';
import { workerConfigFromEnv, WorkerStartError } from '../../src/worker';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-envconfig-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

const PROFILES = `
[profile.default]
address = "default.example.com:7233"
namespace = "from-default"

[profile.cloud]
address = "ns.acct.tmprl.cloud:7233"
namespace = "ns.acct"
api_key = "key-from-file"

[profile.mtls]
address = "mtls.example.com:7233"
[profile.mtls.tls]
server_name = "temporal.internal"
server_ca_cert_data = """${PEM}"""

[profile.plain]
address = "plain.example.com:7233"
api_key = "k"
[profile.plain.tls]
disabled = true

[profile.meta]
address = "meta.example.com:7233"
[profile.meta.grpc_meta]
x_tenant = "a"
`;

/** Loads with `env` and `flags`; the error's message when it throws a ConnectionConfigError. */
function load(env: NodeJS.ProcessEnv, flags: ConnectionFlags = {}) {
  return loadConnectionConfig(flags, env);
}
function problem(env: NodeJS.ProcessEnv, flags: ConnectionFlags = {}): string {
  try {
    load(env, flags);
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectionConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConnectionConfigError');
}

describe('what is read, and in which order', () => {
  test('nothing configured: localhost:7233, namespace "default", no TLS (as before)', () => {
    const t = load({});
    expect(t).toMatchObject({ address: 'localhost:7233', namespace: 'default', tls: false, from: { address: 'default', namespace: 'default' } });
    expect(t.connectionOptions).toEqual({ address: 'localhost:7233' });
  });

  test('the default file: ~/.config/temporalio/temporal.toml, or under $XDG_CONFIG_HOME; its "default" profile', () => {
    const home = path.join(dir, 'home');
    const file = write('home/.config/temporalio/temporal.toml', PROFILES);
    expect(defaultConfigFile({ HOME: home }, 'linux')).toBe(file);
    expect(load({ HOME: home })).toMatchObject({ address: 'default.example.com:7233', namespace: 'from-default', from: { address: `profile "default" of ${file} (address)` } });
    const xdg = path.join(dir, 'xdg');
    write('xdg/temporalio/temporal.toml', '[profile.default]\naddress = "xdg.example.com:7233"\n');
    expect(load({ HOME: home, XDG_CONFIG_HOME: xdg }).address).toBe('xdg.example.com:7233');
    expect(defaultConfigFile({ XDG_CONFIG_HOME: 'relative' }, 'linux')).toBeUndefined(); // as envconfig: only an absolute one
    expect(defaultConfigFile({ HOME: '/h' }, 'darwin')).toBe('/h/Library/Application Support/temporalio/temporal.toml');
  });

  test('no file where one may be (the default place, TEMPORAL_CONFIG_FILE): no profile, as the temporal CLI', () => {
    expect(load({ HOME: path.join(dir, 'nobody') }).address).toBe('localhost:7233');
    expect(load({ TEMPORAL_CONFIG_FILE: path.join(dir, 'missing.toml') }).address).toBe('localhost:7233');
  });

  test('TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE select the file and profile; --config-file and --profile override them', () => {
    const file = write('profiles.toml', PROFILES);
    const other = write('other.toml', '[profile.cloud]\naddress = "other.example.com:7233"\n');
    expect(load({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' })).toMatchObject({ address: 'ns.acct.tmprl.cloud:7233', namespace: 'ns.acct' });
    expect(load({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' }, { profile: 'mtls' }).address).toBe('mtls.example.com:7233');
    expect(load({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' }, { configFile: other }).address).toBe('other.example.com:7233');
  });

  test('variables over the profile, flags over both; the namespace is returned apart (for the Client)', () => {
    const file = write('profiles.toml', PROFILES);
    const env = { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud', TEMPORAL_ADDRESS: 'env.example.com:7233', TEMPORAL_NAMESPACE: 'env-ns' };
    expect(load(env)).toMatchObject({ address: 'env.example.com:7233', namespace: 'env-ns', from: { address: 'TEMPORAL_ADDRESS', namespace: 'TEMPORAL_NAMESPACE' } });
    const t = load(env, { address: 'flag.example.com:7233', namespace: 'flag-ns' });
    expect(t).toMatchObject({ address: 'flag.example.com:7233', namespace: 'flag-ns', from: { address: '--address', namespace: '--namespace', apiKey: `profile "cloud" of ${file} (api_key)` } });
    // What the SDK's Connection gets: the flag's address, the profile's API key (and so TLS); no namespace.
    expect(t.connectionOptions).toEqual({ address: 'flag.example.com:7233', apiKey: 'key-from-file', tls: true });
  });

  test('an empty variable counts as unset (TEMPORAL_ADDRESS= always meant the default here)', () => {
    const file = write('profiles.toml', PROFILES);
    expect(load({ TEMPORAL_ADDRESS: '', TEMPORAL_NAMESPACE: '' })).toMatchObject({ address: 'localhost:7233', namespace: 'default' });
    expect(load({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: '', TEMPORAL_API_KEY: '' })).toMatchObject({ address: 'default.example.com:7233', tls: false });
  });

  test('--disable-config-env applies no variable over the profile; --disable-config-file reads no file; both: the flags and defaults only', () => {
    const file = write('profiles.toml', PROFILES);
    const env = { TEMPORAL_CONFIG_FILE: file, TEMPORAL_ADDRESS: 'env.example.com:7233', TEMPORAL_API_KEY: 'k', TEMPORAL_PROFILE: 'cloud' };
    // As envconfig: TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE still choose the profile; no other variable goes over it.
    expect(load(env, { disableConfigEnv: true })).toMatchObject({ address: 'ns.acct.tmprl.cloud:7233', connectionOptions: { apiKey: 'key-from-file' } });
    expect(load(env, { disableConfigFile: true })).toMatchObject({ address: 'env.example.com:7233', tls: true, connectionOptions: { apiKey: 'k' } });
    expect(problem(env, { disableConfigFile: true, profile: 'cloud' })).toBe('--profile: a profile needs the config file, which --disable-config-file turns off');
    const both = load(env, { disableConfigEnv: true, disableConfigFile: true, address: '127.0.0.1:7233', namespace: 'default' });
    expect(both.connectionOptions).toEqual({ address: '127.0.0.1:7233' });
  });
});

describe('TLS and API keys, as envconfig turns them into the SDK options', () => {
  const file = () => write('profiles.toml', PROFILES);

  test('an API key turns TLS on; tls.disabled = true or TEMPORAL_TLS=0 turns it off again (the key is still sent)', () => {
    expect(load({ TEMPORAL_API_KEY: 'k' })).toMatchObject({ tls: true, connectionOptions: { apiKey: 'k', tls: true }, from: { apiKey: 'TEMPORAL_API_KEY', tls: 'on because an API key is set' } });
    expect(load({ TEMPORAL_CONFIG_FILE: file() }, { profile: 'plain' })).toMatchObject({ tls: false, connectionOptions: { apiKey: 'k', tls: false } });
    expect(load({ TEMPORAL_API_KEY: 'k', TEMPORAL_TLS: '0' })).toMatchObject({ tls: false, connectionOptions: { apiKey: 'k', tls: false } });
  });

  test('TEMPORAL_TLS=1 / true: TLS with the system CAs', () => {
    expect(load({ TEMPORAL_TLS: '1' })).toMatchObject({ tls: true, from: { tls: 'from TEMPORAL_TLS=1' } });
    expect(load({ TEMPORAL_TLS: 'true' }).tls).toBe(true);
  });

  test("a profile's [tls] table: its CA and server name reach the SDK", () => {
    const t = load({ TEMPORAL_CONFIG_FILE: file() }, { profile: 'mtls' });
    expect(t.tls).toBe(true);
    expect(t.from.tls).toBe(`from profile "mtls" of ${file()} ([tls])`);
    const tls = t.connectionOptions.tls as { serverNameOverride?: string; serverRootCACertificate?: Uint8Array };
    expect(tls.serverNameOverride).toBe('temporal.internal');
    expect(Buffer.from(tls.serverRootCACertificate!).toString()).toBe(PEM);
  });

  test('TEMPORAL_TLS_SERVER_CA_CERT_PATH and the client pair from files', () => {
    const ca = write('ca.pem', PEM);
    const crt = write('client.pem', PEM);
    const key = write('client.key', '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n');
    const t = load({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca, TEMPORAL_TLS_CLIENT_CERT_PATH: crt, TEMPORAL_TLS_CLIENT_KEY_PATH: key });
    const tls = t.connectionOptions.tls as { serverRootCACertificate?: Uint8Array; clientCertPair?: { crt: Uint8Array; key: Uint8Array } };
    expect(Buffer.from(tls.serverRootCACertificate!).toString()).toBe(PEM);
    expect(Buffer.from(tls.clientCertPair!.key).toString()).toMatch(/PRIVATE KEY/);
    expect(describeSettings(t)).toBe('address from default; TLS from TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH');
  });

  test('gRPC metadata from the profile and TEMPORAL_GRPC_META_*', () => {
    expect(load({ TEMPORAL_CONFIG_FILE: file(), TEMPORAL_GRPC_META_X_TEAM: 'b' }, { profile: 'meta' }).connectionOptions.metadata).toEqual({ 'x-tenant': 'a', 'x-team': 'b' });
  });
});

describe('a bad setting: one line naming the file or setting and what is wrong', () => {
  test('unparseable TOML: the file, the line and column', () => {
    const bad = write('bad.toml', '[profile.default]\naddress = "unterminated\n');
    expect(problem({ TEMPORAL_CONFIG_FILE: bad })).toMatch(new RegExp(`^TEMPORAL_CONFIG_FILE ${bad}: not valid TOML at line 2, column \\d+: .+$`));
    expect(problem({}, { configFile: bad })).toMatch(new RegExp(`^--config-file ${bad}: not valid TOML at line 2`));
    const home = path.join(dir, 'badhome');
    const dflt = write('badhome/.config/temporalio/temporal.toml', 'this is = = not toml');
    expect(problem({ HOME: home })).toMatch(new RegExp(`^config file ${dflt}: not valid TOML at line 1`));
  });

  test('an unknown profile named explicitly: which ones the file has; the default one missing is fine', () => {
    const file = write('profiles.toml', PROFILES);
    expect(problem({ TEMPORAL_CONFIG_FILE: file }, { profile: 'staging' })).toBe(`--profile: no profile "staging" in ${file} (it has "default", "cloud", "mtls", "plain", "meta")`);
    expect(problem({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' })).toMatch(/^TEMPORAL_PROFILE: no profile "prod" in /);
    const onlyCloud = write('only-cloud.toml', '[profile.cloud]\naddress = "c.example.com:7233"\n');
    expect(load({ TEMPORAL_CONFIG_FILE: onlyCloud }).address).toBe('localhost:7233');
    const empty = write('empty.toml', '');
    expect(load({ TEMPORAL_CONFIG_FILE: empty }).address).toBe('localhost:7233');
    expect(problem({ TEMPORAL_CONFIG_FILE: empty }, { profile: 'cloud' })).toBe(`--profile: no profile "cloud" in ${empty} (it has no [profile.NAME] table)`);
  });

  test('a profile named with no file to hold it', () => {
    expect(problem({ TEMPORAL_CONFIG_FILE: path.join(dir, 'missing.toml') }, { profile: 'cloud' })).toBe(`--profile: no profile "cloud": there is no config file ${path.join(dir, 'missing.toml')}`);
    expect(problem({}, { profile: 'cloud' })).toBe('--profile: no profile "cloud": no config file was found (set TEMPORAL_CONFIG_FILE or --config-file)');
  });

  test('--config-file must exist; a directory or a device is no config file', () => {
    expect(problem({}, { configFile: path.join(dir, 'nope.toml') })).toBe(`--config-file ${path.join(dir, 'nope.toml')}: cannot read it (ENOENT)`);
    expect(problem({ TEMPORAL_CONFIG_FILE: dir })).toBe(`TEMPORAL_CONFIG_FILE ${dir}: expected a TOML config file, it is a directory`);
    expect(problem({ TEMPORAL_CONFIG_FILE: '/dev/urandom' })).toBe('TEMPORAL_CONFIG_FILE /dev/urandom: expected a TOML config file, it is a character device');
  });

  test('a malformed address, named by where it came from', () => {
    const file = write('bad-address.toml', '[profile.default]\naddress = "no port"\n[profile.num]\naddress = 7233\n');
    expect(problem({ TEMPORAL_ADDRESS: 'not an address' })).toBe('TEMPORAL_ADDRESS: expected host:port with a port from 1 to 65535 (e.g. localhost:7233), got "not an address"');
    expect(problem({}, { address: 'localhost:99999' })).toMatch(/^--address: expected host:port/);
    expect(problem({ TEMPORAL_CONFIG_FILE: file })).toBe(`profile "default" of ${file} (address): expected host:port with a port from 1 to 65535 (e.g. localhost:7233), got "no port"`);
    expect(problem({ TEMPORAL_CONFIG_FILE: file }, { profile: 'num' })).toBe(`profile "num" of ${file}: address: expected a string, got 7233`);
  });

  test('a TLS file that cannot be read, or that is not PEM', () => {
    const missing = path.join(dir, 'no-ca.pem');
    expect(problem({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: missing })).toBe(`TEMPORAL_TLS_SERVER_CA_CERT_PATH ${missing}: cannot read it (ENOENT)`);
    const junk = write('junk.pem', 'not a certificate');
    expect(problem({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: junk })).toBe(`TEMPORAL_TLS_SERVER_CA_CERT_PATH ${junk}: expected a PEM server CA certificate (-----BEGIN …), got 17 bytes of something else`);
    const file = write('tls-missing.toml', `[profile.default]\naddress = "a.example.com:7233"\n[profile.default.tls]\nserver_ca_cert_path = "${missing}"\n`);
    expect(problem({ TEMPORAL_CONFIG_FILE: file })).toBe(`profile "default" of ${file}: TLS file ${missing}: cannot read it (ENOENT)`);
  });

  test('the CLI: a CliError with exit 2; the worker: a WorkerStartError("config")', () => {
    let err: unknown;
    try {
      temporalTarget({}, { TEMPORAL_ADDRESS: 'nope' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(ExitCode.invalidInput);
    const worker = { ROUTER_ADMIN_URL: 'http://127.0.0.1:1', ROUTER_PUBLIC_URL: 'http://127.0.0.1:2', ROUTER_TOKEN: 'x', ROLLOUT_STATE_DIR: path.join(dir, 'worker-state') };
    expect(() => workerConfigFromEnv({ ...worker }, { profile: 'cloud' })).toThrow(new WorkerStartError('--profile: no profile "cloud": no config file was found (set TEMPORAL_CONFIG_FILE or --config-file)', 'config'));
  });
});

test('the worker reads the same: profile, variables and flags', () => {
  const file = write('profiles.toml', PROFILES);
  const worker = { ROUTER_ADMIN_URL: 'http://127.0.0.1:1', ROUTER_PUBLIC_URL: 'http://127.0.0.1:2', ROUTER_TOKEN: 'x', ROLLOUT_STATE_DIR: path.join(dir, 'worker-state') };
  const config = workerConfigFromEnv({ ...worker, TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' }, { namespace: 'flag-ns' });
  expect(config).toMatchObject({ temporalAddress: 'ns.acct.tmprl.cloud:7233', namespace: 'flag-ns', temporal: { tls: true, connectionOptions: { apiKey: 'key-from-file' } } });
});
