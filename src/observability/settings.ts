/**
 * The worker's metrics and log settings: `--metrics-port` over ROLLOUT_METRICS_PORT (unset, empty
 * or 0 = no metrics port), ROLLOUT_METRICS_HOST (default 127.0.0.1; 0.0.0.0 in a container),
 * ROLLOUT_LOG_LEVEL. Checked before anything is contacted; each problem is one line naming the setting.
 */
import net from 'node:net';
import { showValue } from '../spec/show-value';
import { logLevelFrom, type RolloutLogLevel } from './log';

export interface MetricsSettings {
  host: string;
  port: number;
  /** Where the port came from, to name it in an error (`--metrics-port`, `ROLLOUT_METRICS_PORT`). */
  portFrom: string;
}

export interface ObservabilitySettings {
  /** undefined: no metrics port. */
  metrics?: MetricsSettings;
  logLevel: RolloutLogLevel;
}

export const DEFAULT_METRICS_HOST = '127.0.0.1';

/** Throws an Error with the one-line message (the worker wraps it as a config error: exit 2). */
export function observabilitySettingsFrom(env: NodeJS.ProcessEnv, flags: { metricsPort?: string } = {}): ObservabilitySettings {
  const level = logLevelFrom(env.ROLLOUT_LOG_LEVEL);
  if ('problem' in level) throw new Error(level.problem);
  const [portFrom, portValue] = flags.metricsPort !== undefined ? ['--metrics-port', flags.metricsPort] : ['ROLLOUT_METRICS_PORT', env.ROLLOUT_METRICS_PORT];
  if (portValue === undefined || portValue === '') return { logLevel: level.level };
  if (!/^\d{1,5}$/.test(portValue) || Number(portValue) > 65_535) throw new Error(`${portFrom}: expected a TCP port (1–65535, or 0 for none), got ${showValue(portValue)}`);
  // Compared as a number: "00" is 0 too, and listening on port 0 would pick a random port.
  if (Number(portValue) === 0) return { logLevel: level.level };
  const host = env.ROLLOUT_METRICS_HOST || DEFAULT_METRICS_HOST;
  if (net.isIP(host) === 0 && host !== 'localhost') throw new Error(`ROLLOUT_METRICS_HOST: expected an IP address to listen on (127.0.0.1, 0.0.0.0, ::), got ${showValue(host)}`);
  return { logLevel: level.level, metrics: { host, port: Number(portValue), portFrom } };
}
