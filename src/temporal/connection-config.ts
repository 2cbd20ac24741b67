/**
 * Where and how to connect to Temporal, read as Temporal's own tools read it (the `temporal` CLI,
 * the SDKs' `envconfig`): a profile of the TOML config file, then the `TEMPORAL_*` environment
 * variables over it, then the command line's flags over both. One loader for every command that
 * connects and for the worker.
 *
 *   defaults (localhost:7233, namespace "default", no TLS)
 *     < the profile: `--profile`, else TEMPORAL_PROFILE, else "default"; of the file `--config-file`,
 *       else TEMPORAL_CONFIG_FILE, else $XDG_CONFIG_HOME (or ~/.config)/temporalio/temporal.toml
 *     < TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_*, TEMPORAL_GRPC_META_*
 *     < `--address`, `--namespace`
 *
 * The profile and the variables are applied by `@temporalio/envconfig` itself (so an API key turns
 * TLS on unless TLS is disabled, exactly as there); this module adds what a command line needs:
 * a bad file, an unknown profile named explicitly or a malformed address is a ConnectionConfigError
 * naming the file or setting (the CLI's exit 2), checked before anything is contacted, and where
 * each setting came from, for the messages of a connection that fails. An empty variable counts
 * as unset (as TEMPORAL_ADDRESS= always did here). No SDK client import: cheap to load.
 */
import { loadClientConfig, loadClientConfigProfile, toClientOptions, type ClientConfig, type ClientConfigProfile } from '@temporalio/envconfig';
import type { Metadata } from '@temporalio/client';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow';
import os from 'node:os';
import path from 'node:path';
import { readBoundedFileSync } from '../spec/read-file';
import { showValue } from '../spec/show-value';
import { temporalAddressProblem } from './address';

export const DEFAULT_ADDRESS = 'localhost:7233';
export const DEFAULT_NAMESPACE = 'default';
const DEFAULT_PROFILE = 'default';
/** A config file larger than this is refused, not read (a profile file is a few hundred bytes). */
export const CONFIG_FILE_MAX_BYTES = 1024 * 1024;

/** The connection flags of the command line (`rollout --profile cloud status llm`). */
export interface ConnectionFlags {
  profile?: string;
  configFile?: string;
  address?: string;
  namespace?: string;
  /** Read no config file (as `temporal --disable-config-file`). */
  disableConfigFile?: boolean;
  /** Apply no TEMPORAL_* variable over the profile (as `temporal --disable-config-env`; TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE still choose it). */
  disableConfigEnv?: boolean;
}

/** What the SDK's Connection.connect and NativeConnection.connect take. */
export interface ConnectionOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
  metadata?: Metadata;
}

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** For Connection.connect / NativeConnection.connect; the namespace goes to the Client or Worker. */
  connectionOptions: ConnectionOptions;
  /** Whether the connection uses TLS (asked for, or turned on by an API key). */
  tls: boolean;
  /**
   * Where each setting came from, for messages: `TEMPORAL_ADDRESS`, `--address`, `profile "cloud"
   * of /…/temporal.toml (address)`, `default`…; `tls` says why TLS is on (`from TEMPORAL_TLS=1`).
   */
  from: { address: string; namespace: string; tls?: string; apiKey?: string };
}

/** A connection setting that is wrong: which one, and what is wrong with it. The CLI's exit 2. */
export class ConnectionConfigError extends Error {
  override name = 'ConnectionConfigError';
}

/** The default config file: $XDG_CONFIG_HOME (absolute) or ~/.config, + temporalio/temporal.toml (as envconfig finds it). */
export function defaultConfigFile(env: NodeJS.ProcessEnv, platform: NodeJS.Platform = os.platform()): string | undefined {
  let dir: string | undefined;
  if (platform === 'win32') dir = env.APPDATA || undefined;
  else if (platform === 'darwin') dir = env.HOME ? path.join(env.HOME, 'Library', 'Application Support') : undefined;
  else if (env.XDG_CONFIG_HOME) dir = path.isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : undefined;
  else dir = env.HOME ? path.join(env.HOME, '.config') : undefined;
  return dir ? path.join(dir, 'temporalio', 'temporal.toml') : undefined;
}

/** The variables envconfig reads, empty ones left out (an empty TEMPORAL_GRPC_META_X still removes a header, as there). */
function temporalVariables(env: NodeJS.ProcessEnv): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('TEMPORAL_') || value === undefined) continue;
    if (value === '' && !name.startsWith('TEMPORAL_GRPC_META_')) continue;
    vars[name] = value;
  }
  return vars;
}

interface ConfigFile {
  path: string;
  /** What named it: `--config-file`, `TEMPORAL_CONFIG_FILE` or undefined (the default place). */
  namedBy?: string;
  data?: string;
}

/** The config file to read, and its text (undefined when there is none where it was looked for and it was not named on the command line). */
function readConfigFile(flags: ConnectionFlags, vars: Record<string, string>, env: NodeJS.ProcessEnv): ConfigFile | undefined {
  const named = flags.configFile !== undefined ? { path: flags.configFile, namedBy: '--config-file' } : vars.TEMPORAL_CONFIG_FILE ? { path: vars.TEMPORAL_CONFIG_FILE, namedBy: 'TEMPORAL_CONFIG_FILE' } : undefined;
  const defaultPath = named ? undefined : defaultConfigFile(env);
  const file: Omit<ConfigFile, 'data'> | undefined = named ?? (defaultPath ? { path: defaultPath } : undefined);
  if (!file) return undefined;
  if (file.path === '') throw new ConnectionConfigError(`${file.namedBy}: expected the path of a TOML config file, got ""`);
  const read = readBoundedFileSync(file.path, CONFIG_FILE_MAX_BYTES);
  const where = `${file.namedBy ?? 'config file'} ${file.path}`;
  if (read.ok) return { ...file, data: read.bytes.toString('utf8') };
  // As the `temporal` CLI: no file where one may be is no profile; a file named on our own command line must exist.
  if ('code' in read && read.code === 'ENOENT' && file.namedBy !== '--config-file') return { ...file, data: undefined };
  if ('notRegular' in read) throw new ConnectionConfigError(`${where}: expected a TOML config file, it is ${read.notRegular}`);
  if ('tooLarge' in read) throw new ConnectionConfigError(`${where}: expected a config file of at most ${CONFIG_FILE_MAX_BYTES / 1024} KiB`);
  throw new ConnectionConfigError(`${where}: cannot read it (${read.code})`);
}

/** smol-toml's error (thrown through envconfig): "Invalid TOML document: …" with its line and column. */
function tomlProblem(err: unknown): string | undefined {
  if (!(err instanceof Error) || !/^Invalid TOML document/.test(err.message)) return undefined;
  const { line, column } = err as { line?: unknown; column?: unknown };
  const what = err.message.split('\n')[0].replace(/^Invalid TOML document:\s*/, '');
  return `not valid TOML${typeof line === 'number' ? ` at line ${line}${typeof column === 'number' ? `, column ${column}` : ''}` : ''}: ${what}`;
}

/** Checks the types of the profile's fields (envconfig takes whatever the TOML holds). */
function checkProfileTypes(profile: ClientConfigProfile, label: string): void {
  for (const key of ['address', 'namespace', 'apiKey'] as const) {
    const value: unknown = profile[key];
    if (value !== undefined && typeof value !== 'string') {
      throw new ConnectionConfigError(`${label}: ${key === 'apiKey' ? 'api_key' : key}: expected a string, got ${showValue(value)}`);
    }
  }
  const tls: unknown = profile.tls;
  if (tls !== undefined && (typeof tls !== 'object' || tls === null)) throw new ConnectionConfigError(`${label}: tls: expected a table, got ${showValue(tls)}`);
  const disabled: unknown = profile.tls?.disabled;
  if (disabled !== undefined && typeof disabled !== 'boolean') throw new ConnectionConfigError(`${label}: tls.disabled: expected true or false, got ${showValue(disabled)}`);
}

/**
 * The connection to make, from the flags, the environment and the config file; a
 * ConnectionConfigError for a setting that is wrong. Reads files (the config file, TLS
 * certificates it names) but contacts nothing.
 */
export function loadConnectionConfig(flags: ConnectionFlags = {}, env: NodeJS.ProcessEnv = process.env): TemporalTarget {
  // TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE choose the file and profile even with --disable-config-env
  // (as in envconfig); the other variables are applied over the profile unless it is given.
  const allVars = temporalVariables(env);
  const vars = flags.disableConfigEnv ? {} : allVars;
  if (flags.profile !== undefined && flags.disableConfigFile) throw new ConnectionConfigError('--profile: a profile needs the config file, which --disable-config-file turns off');
  const file = flags.disableConfigFile ? undefined : readConfigFile(flags, allVars, env);
  const explicitProfile = flags.disableConfigFile
    ? undefined
    : flags.profile !== undefined
      ? { name: flags.profile, namedBy: '--profile' }
      : allVars.TEMPORAL_PROFILE
        ? { name: allVars.TEMPORAL_PROFILE, namedBy: 'TEMPORAL_PROFILE' }
        : undefined;
  if (explicitProfile && explicitProfile.name === '') throw new ConnectionConfigError(`${explicitProfile.namedBy}: expected a profile name, got ""`);
  const profileName = explicitProfile?.name ?? DEFAULT_PROFILE;

  // The file's profile, as envconfig reads it.
  let fileProfile: ClientConfigProfile | undefined;
  if (file?.data !== undefined) {
    let config: ClientConfig;
    try {
      config = loadClientConfig({ configSource: { data: file.data }, overrideEnvVars: {} });
    } catch (err) {
      const toml = tomlProblem(err);
      if (toml) throw new ConnectionConfigError(`${file.namedBy ?? 'config file'} ${file.path}: ${toml}`);
      config = { profiles: {} }; // valid TOML without [profile.*] tables (envconfig cannot list what is not there)
    }
    fileProfile = Object.hasOwn(config.profiles, profileName) ? config.profiles[profileName] : undefined;
    if (!fileProfile && explicitProfile) {
      const names = Object.keys(config.profiles);
      throw new ConnectionConfigError(
        `${explicitProfile.namedBy}: no profile ${showValue(profileName)} in ${file.path} (${names.length ? `it has ${names.map((n) => showValue(n)).join(', ')}` : 'it has no [profile.NAME] table'})`,
      );
    }
  } else if (explicitProfile) {
    throw new ConnectionConfigError(
      `${explicitProfile.namedBy}: no profile ${showValue(profileName)}: ${file ? `there is no config file ${file.path}` : 'no config file was found (set TEMPORAL_CONFIG_FILE or --config-file)'}`,
    );
  }
  const profileLabel = file && fileProfile ? `profile ${showValue(profileName)} of ${file.path}` : undefined;
  if (fileProfile && profileLabel) checkProfileTypes(fileProfile, profileLabel);

  // The profile with the variables over it, by envconfig (both off: neither).
  let profile: ClientConfigProfile = {};
  const useFile = fileProfile !== undefined && file?.data !== undefined;
  const useEnv = !flags.disableConfigEnv;
  if (useFile || useEnv) {
    try {
      profile = loadClientConfigProfile({
        ...(useFile ? { configSource: { data: file.data! }, profile: profileName } : { disableFile: true }),
        disableEnv: !useEnv,
        overrideEnvVars: vars,
      });
    } catch (err) {
      throw new ConnectionConfigError(`${profileLabel ?? 'TEMPORAL_* variables'}: ${firstLine(err)}`);
    }
  }

  let connect: ReturnType<typeof toClientOptions>;
  try {
    connect = toClientOptions(profile);
  } catch (err) {
    // A TLS certificate or key file that cannot be read.
    const { code, path: badPath } = err as NodeJS.ErrnoException;
    if (code && badPath) throw new ConnectionConfigError(`${tlsFileSetting(badPath, vars, profileLabel)} ${badPath}: cannot read it (${code})`);
    throw new ConnectionConfigError(`${profileLabel ?? 'TEMPORAL_TLS_* variables'}: ${firstLine(err)}`);
  }
  const tlsOption = connect.connectionOptions.tls ?? undefined;
  checkPem(tlsOption, vars, profileLabel);

  const pick = (flag: string | undefined, key: 'address' | 'namespace', variable: string, fromProfile: string | undefined, fallback: string) =>
    flag !== undefined
      ? { value: flag, from: `--${key}` }
      : vars[variable] !== undefined
        ? { value: vars[variable], from: variable }
        : fromProfile !== undefined && profileLabel
          ? { value: fromProfile, from: `${profileLabel} (${key})` }
          : { value: fallback, from: 'default' };
  const address = pick(flags.address, 'address', 'TEMPORAL_ADDRESS', fileProfile?.address, DEFAULT_ADDRESS);
  const namespace = pick(flags.namespace, 'namespace', 'TEMPORAL_NAMESPACE', fileProfile?.namespace, DEFAULT_NAMESPACE);
  const addressProblem = temporalAddressProblem(address.value);
  if (addressProblem) throw new ConnectionConfigError(`${address.from}: ${addressProblem}`);
  if (namespace.value === '') throw new ConnectionConfigError(`${namespace.from}: expected a namespace name, got ""`);

  const apiKey = connect.connectionOptions.apiKey;
  const apiKeyFrom = apiKey === undefined ? undefined : vars.TEMPORAL_API_KEY !== undefined ? 'TEMPORAL_API_KEY' : `${profileLabel} (api_key)`;
  const tls = tlsOption !== undefined && tlsOption !== false;
  return {
    address: address.value,
    namespace: namespace.value,
    connectionOptions: {
      address: address.value,
      ...(tlsOption !== undefined ? { tls: tlsOption } : {}),
      ...(apiKey !== undefined ? { apiKey } : {}),
      ...(connect.connectionOptions.metadata && Object.keys(connect.connectionOptions.metadata).length ? { metadata: connect.connectionOptions.metadata } : {}),
    },
    tls,
    from: {
      address: address.from,
      namespace: namespace.from,
      ...(tls ? { tls: tlsReason(vars, fileProfile, profileLabel, apiKeyFrom) } : {}),
      ...(apiKeyFrom ? { apiKey: apiKeyFrom } : {}),
    },
  };
}

const firstLine = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0];

/** Why TLS is on, for a message: the variable or profile that asked for it, or the API key that implies it. */
function tlsReason(vars: Record<string, string>, fileProfile: ClientConfigProfile | undefined, profileLabel: string | undefined, apiKeyFrom: string | undefined): string {
  const tlsVars = Object.keys(vars).filter((n) => n === 'TEMPORAL_TLS' || n.startsWith('TEMPORAL_TLS_'));
  if (tlsVars.length) return `from ${tlsVars.map((n) => (n === 'TEMPORAL_TLS' ? `TEMPORAL_TLS=${vars[n]}` : n)).join(', ')}`;
  if (fileProfile?.tls && profileLabel) return `from ${profileLabel} ([tls])`;
  return apiKeyFrom ? 'on because an API key is set' : 'from the TLS settings';
}

/** Which setting named a TLS file (for "cannot read it"). */
function tlsFileSetting(file: string, vars: Record<string, string>, profileLabel: string | undefined): string {
  const named = Object.entries(vars).find(([n, v]) => n.startsWith('TEMPORAL_TLS_') && n.endsWith('_PATH') && v === file);
  return named ? named[0] : `${profileLabel ?? 'TLS settings'}: TLS file`;
}

/** A certificate or key that is not PEM is a setting to fix (exit 2), not a connection to try. */
function checkPem(tls: TLSConfig | boolean | undefined, vars: Record<string, string>, profileLabel: string | undefined): void {
  if (!tls || tls === true) return;
  const parts: Array<[string, Uint8Array | undefined, string]> = [
    ['server CA certificate', tls.serverRootCACertificate, 'SERVER_CA_CERT'],
    ['client certificate', tls.clientCertPair?.crt, 'CLIENT_CERT'],
    ['client key', tls.clientCertPair?.key, 'CLIENT_KEY'],
  ];
  for (const [what, bytes, suffix] of parts) {
    if (bytes === undefined || Buffer.from(bytes).toString('utf8').includes('-----BEGIN ')) continue;
    const setting = vars[`TEMPORAL_TLS_${suffix}_PATH`] !== undefined
      ? `TEMPORAL_TLS_${suffix}_PATH ${vars[`TEMPORAL_TLS_${suffix}_PATH`]}`
      : vars[`TEMPORAL_TLS_${suffix}_DATA`] !== undefined
        ? `TEMPORAL_TLS_${suffix}_DATA`
        : `${profileLabel ?? 'TLS settings'} (tls ${what})`;
    throw new ConnectionConfigError(`${setting}: expected a PEM ${what} (-----BEGIN …), got ${bytes.length} bytes of something else`);
  }
  const pair = tls.clientCertPair;
  if ((vars.TEMPORAL_TLS_CLIENT_CERT_PATH || vars.TEMPORAL_TLS_CLIENT_CERT_DATA) && !pair) {
    throw new ConnectionConfigError('TEMPORAL_TLS_CLIENT_CERT_*: a client certificate needs its key too (TEMPORAL_TLS_CLIENT_KEY_PATH or _DATA)');
  }
}

/** One line saying where the settings came from, for a message about a failed connection. */
export function describeSettings(target: TemporalTarget): string {
  const parts = [`address from ${target.from.address}`];
  if (target.from.tls) parts.push(`TLS ${target.from.tls}`);
  if (target.from.apiKey) parts.push(`API key from ${target.from.apiKey}`);
  return parts.join('; ');
}
