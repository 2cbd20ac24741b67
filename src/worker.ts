/**
 * Wires the providers, the router client and the activities into a Temporal worker.
 * `rollout worker` runs it from the environment; `rollout dev` runs it as a child process.
 */
import { connectAnswering, credentialsMessage, explainConnectFailure, isCredentialsRefused } from './temporal/connect';
import { Client, Connection, isGrpcServiceError } from '@temporalio/client';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import type pino from 'pino';
import fs from 'node:fs';
import path from 'node:path';
import { createActivities } from './activities';
import { HEARTBEAT_EVERY_MS } from './activities/heartbeat';
import { WORKER_CONCURRENCY } from './worker-concurrency';
import { checkSearchAttributes, searchAttributeWarnings } from './activities/search-attributes';
import { secretDirsFrom } from './activities/secret-files';
import { AWS_CONFIG_ENV, AwsProvider, awsConfigProblem, awsWorkerConfigFromEnv, type AwsWorkerConfig } from './providers/aws';
import { LocalProvider } from './providers/local';
import { replicaUserFrom, type ReplicaUser } from './providers/local/replica-identity';
import type { Provider } from './providers/types';
import { RouterAdminClient } from './router/client';
import { readRouterTokenFile } from './router/token-file';
import { prepareStateDir, StateDirError } from './dev/state-dir';
import { showValue } from './spec/show-value';
import { ConnectionConfigError, loadConnectionConfig, type ConnectionFlags, type TemporalTarget } from './temporal/connection-config';
import { TASK_QUEUE } from './workflows/types';
import { countActivityFailures } from './observability/activity-failures';
import { createWorkerLogger, TEMPORAL_LEVEL, TemporalPinoLogger } from './observability/log';
import { WorkerMetrics } from './observability/metrics';
import { rolloutMetricsSinks } from './observability/metrics-sinks';
import { startMetricsServer, type MetricsServer } from './observability/metrics-server';
import { observabilitySettingsFrom, type ObservabilitySettings } from './observability/settings';

export interface WorkerConfig {
  /** Where and how to connect (profile, TEMPORAL_* variables, flags: src/temporal/connection-config.ts). */
  temporal: TemporalTarget;
  temporalAddress: string;
  namespace: string;
  taskQueue: string;
  /** Where the local provider keeps replica records and logs. */
  stateDir: string;
  /** GPUs the local provider may hand out; undefined = detect with nvidia-smi. */
  gpus?: number;
  routerAdminUrl: string;
  routerToken: string;
  routerPublicUrl: string;
  /** Who replicas run as (ROLLOUT_REPLICA_USER, resolved); undefined = the worker's own user. */
  replicaUser?: ReplicaUser;
  /** ROUTER_TOKEN_FILE, when the token came from one: never readable as a secret. */
  routerTokenFile?: string;
  /** ROLLOUT_SECRET_DIRS, resolved: the only directories `from_file` secrets may come from; undefined = any. */
  secretDirs?: string[];
  /** The AWS provider's account settings (the file ROLLOUT_AWS_CONFIG names); undefined = no aws provider. */
  aws?: AwsWorkerConfig;
  /** Metrics port and log level (ROLLOUT_METRICS_PORT/--metrics-port, ROLLOUT_METRICS_HOST, ROLLOUT_LOG_LEVEL); absent = no metrics port, level info. */
  observability?: ObservabilitySettings;
}

/**
 * Why the worker could not start: `config` — a setting is wrong (the CLI's exit 2: fix it and
 * start again); `unreachable` — Temporal does not answer, `tls` — the TLS handshake failed,
 * `credentials` — Temporal refused the API key or certificate (exit 3). One line each, naming the setting.
 */
export class WorkerStartError extends Error {
  override name = 'WorkerStartError';
  constructor(
    message: string,
    readonly reason: 'config' | 'unreachable' | 'tls' | 'credentials',
  ) {
    super(message);
  }
}

const configError = (message: string) => new WorkerStartError(message, 'config');

/** The router's admin token file is read only if it is a regular file of at most this many bytes. */
export { ROUTER_TOKEN_FILE_MAX_BYTES } from './router/token-file';

/**
 * The worker's settings from its environment (and the CLI's connection flags, over the
 * environment); every bad one is a WorkerStartError('config') naming it.
 */
export function workerConfigFromEnv(env: NodeJS.ProcessEnv = process.env, flags: ConnectionFlags = {}, workerFlags: { metricsPort?: string } = {}): WorkerConfig {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) throw configError(`${name} is not set`);
    return value;
  };
  const httpUrl = (name: string): string => {
    const value = required(name);
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw configError(`${name}: expected an http:// or https:// URL, got ${showValue(value)}`);
    return value.replace(/\/+$/, '');
  };
  let temporal: TemporalTarget;
  try {
    temporal = loadConnectionConfig(flags, env);
  } catch (err) {
    throw err instanceof ConnectionConfigError ? configError(err.message) : err;
  }
  const gpus = env.ROLLOUT_GPUS;
  if (gpus !== undefined && gpus !== '' && !/^\d{1,4}$/.test(gpus)) throw configError(`ROLLOUT_GPUS: expected a whole number of GPUs (0, 1, 2…), got ${showValue(gpus)}`);
  const routerAdminUrl = httpUrl('ROUTER_ADMIN_URL');
  const routerPublicUrl = httpUrl('ROUTER_PUBLIC_URL');
  const routerToken = routerTokenFrom(env);
  let replicaUser: ReplicaUser | undefined;
  try {
    replicaUser = replicaUserFrom(env.ROLLOUT_REPLICA_USER, process.getuid?.() ?? -1, () => fs.readFileSync('/etc/passwd', 'utf8'));
  } catch (err) {
    throw configError(err instanceof Error ? err.message : String(err));
  }
  const awsProblem = awsConfigProblem(env);
  if (awsProblem) throw configError(awsProblem);
  const aws = awsWorkerConfigFromEnv(env);
  let stateDir: string;
  try {
    stateDir = prepareStateDir(env.ROLLOUT_STATE_DIR ?? '.rollout', 'ROLLOUT_STATE_DIR');
  } catch (err) {
    throw err instanceof StateDirError ? configError(err.message) : err;
  }
  let observability: ObservabilitySettings;
  try {
    observability = observabilitySettingsFrom(env, workerFlags);
  } catch (err) {
    throw configError(err instanceof Error ? err.message : String(err));
  }
  let secretDirs: string[] | undefined;
  try {
    secretDirs = secretDirsFrom(env.ROLLOUT_SECRET_DIRS);
  } catch (err) {
    throw configError(err instanceof Error ? err.message : String(err));
  }
  return {
    temporal,
    temporalAddress: temporal.address,
    namespace: temporal.namespace,
    taskQueue: env.ROLLOUT_TASK_QUEUE || TASK_QUEUE,
    stateDir,
    gpus: gpus !== undefined && gpus !== '' ? Number(gpus) : undefined,
    routerAdminUrl,
    routerToken,
    routerPublicUrl,
    replicaUser,
    secretDirs,
    routerTokenFile: env.ROUTER_TOKEN_FILE || undefined,
    ...(aws?.ok ? { aws: aws.config } : {}),
    observability,
  };
}

/**
 * The router's admin token: from ROUTER_TOKEN_FILE (preferred: it never enters the worker's
 * environment, which its child processes could read in /proc/<pid>/environ) or ROUTER_TOKEN.
 * The file is read bounded: a FIFO or /dev/urandom is refused, not read forever.
 */
function routerTokenFrom(env: NodeJS.ProcessEnv): string {
  const file = env.ROUTER_TOKEN_FILE;
  if (file) {
    const read = readRouterTokenFile(file);
    if (!read.ok) throw configError(`ROUTER_TOKEN_FILE ${file}: ${read.why}`);
    return read.token;
  }
  if (env.ROUTER_TOKEN) return env.ROUTER_TOKEN;
  throw configError('ROUTER_TOKEN_FILE (or ROUTER_TOKEN) is not set');
}

export function createProviders(config: Pick<WorkerConfig, 'stateDir' | 'gpus' | 'replicaUser' | 'aws'>, logger?: pino.Logger): Record<string, Provider> {
  return {
    local: new LocalProvider({ stateDir: path.join(config.stateDir, 'local'), gpus: config.gpus, replicaUser: config.replicaUser, logger: logger?.child({ component: 'local-provider' }) }),
    ...(config.aws ? { aws: new AwsProvider({ config: config.aws, logger: logger?.child({ component: 'aws-provider' }) }) } : {}),
  };
}

/** What a spec asking for a provider this worker lacks is told. */
export const PROVIDER_HELP: Record<string, string> = {
  aws: `set ${AWS_CONFIG_ENV} to the worker's AWS config file (subnets, security groups, instance profile: README "AWS EC2 provider") and restart the worker`,
};

/** Path of the workflow bundle's entry, from src/ (tests) or dist/ (the CLI). */
export const workflowsPath = require.resolve('./workflows');

/** What the worker reports to: its metrics (counted by the sinks, the activity interceptor, the providers' gauge) and its log. */
export interface WorkerObservers {
  metrics?: WorkerMetrics;
  logger?: pino.Logger;
}

/**
 * The worker of `rollout worker`. `extra` lets a harness (the worker-crash chaos suite) add
 * activity interceptors or hand over a prebuilt workflow bundle, so restarts skip webpack.
 */
export async function createWorker(
  config: WorkerConfig,
  connection: NativeConnection,
  temporalClient?: Client,
  extra: Pick<WorkerOptions, 'interceptors' | 'workflowBundle'> = {},
  observers: WorkerObservers = {},
): Promise<Worker> {
  const providers = createProviders(config, observers.logger);
  observers.metrics?.observeProviders(providers);
  const activities = createActivities({
    temporalClient,
    providers,
    providerHelp: PROVIDER_HELP,
    router: new RouterAdminClient(config.routerAdminUrl, config.routerToken),
    routerPublicUrl: config.routerPublicUrl,
    // The state dir holds the router's admin token: no spec may hand it to a replica.
    secretFiles: {
      allowedDirs: config.secretDirs,
      deniedDirs: [fs.realpathSync(config.stateDir)],
      // The token file by name and by inode (a hard link elsewhere), and the stack's own copy.
      deniedFiles: [...(config.routerTokenFile ? [fs.realpathSync(config.routerTokenFile)] : []), path.join(fs.realpathSync(config.stateDir), 'router.token')],
    },
  });
  return Worker.create({
    connection,
    namespace: config.namespace,
    taskQueue: config.taskQueue,
    ...(extra.workflowBundle ? { workflowBundle: extra.workflowBundle } : { workflowsPath }),
    interceptors: {
      ...extra.interceptors,
      activity: [...(observers.metrics ? [countActivityFailures(observers.metrics)] : []), ...(extra.interceptors?.activity ?? [])],
    },
    // Rollouts started and finished (src/workflows/metrics-sink.ts); without metrics, accepted and dropped.
    sinks: rolloutMetricsSinks(observers.metrics),
    activities,
    // Heartbeats reach the server at the activities' own pace (HEARTBEAT_EVERY_MS), not at 80% of
    // the 5 s heartbeat timeout, so a busy machine has seconds of slack before a timeout.
    maxHeartbeatThrottleInterval: HEARTBEAT_EVERY_MS,
    defaultHeartbeatThrottleInterval: HEARTBEAT_EVERY_MS,
    // After a worker crash, a workflow task queued for the dead worker's sticky queue moves to the
    // shared queue after this long instead of 10 s (a miss only costs a replay on a live worker).
    stickyQueueScheduleToStartTimeout: '3 seconds',
    // Slots and pollers: see src/worker-concurrency.ts (README "How many workers").
    ...WORKER_CONCURRENCY,
  });
}

/** Runs until SIGINT/SIGTERM; prints `worker ready` once polling. */
export async function runWorker(config: WorkerConfig, extra: Parameters<typeof createWorker>[3] = {}): Promise<void> {
  // Under `rollout dev`, stdin is a pipe from the stack: when the stack dies (even by SIGKILL, and
  // even before this worker is up) it closes, and the worker stops instead of living on as an orphan.
  let worker: Worker | undefined;
  if (process.env.ROLLOUT_EXIT_WITH_STDIN === '1') {
    process.stdin.on('end', () => {
      if (!worker) process.exit(1); // not up yet: nothing to finish
      if (worker.getState() === 'RUNNING') worker.shutdown();
    });
    process.stdin.on('error', () => undefined);
    process.stdin.resume();
    // Its stdout is a pipe to the stack as well: once the stack is gone, writes fail (EPIPE).
    process.stdout.on('error', () => undefined);
  }
  const settings = config.observability ?? { logLevel: 'info' };
  const logger = createWorkerLogger(settings.logLevel);
  installRuntimeLogger(logger, settings);
  const metrics = settings.metrics ? new WorkerMetrics() : undefined;
  // The metrics port first: one in use is a setting to fix (exit 2), said before Temporal is contacted.
  let metricsServer: MetricsServer | undefined;
  if (settings.metrics && metrics) {
    const { host, port, portFrom } = settings.metrics;
    try {
      metricsServer = await startMetricsServer({ host, port, registry: metrics.registry, healthy: () => worker?.getState() === 'RUNNING' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'EADDRINUSE' ? 'in use by another program' : code === 'EACCES' ? 'not allowed to listen on it' : code === 'EADDRNOTAVAIL' ? `ROLLOUT_METRICS_HOST ${host} is not an address of this machine` : String(code ?? err);
      throw configError(`${portFrom} ${port}: cannot listen on ${host}:${port}: ${why}`);
    }
    logger.info({ url: `${metricsServer.url}/metrics` }, `metrics on ${metricsServer.url}/metrics, health on ${metricsServer.url}/healthz`);
  }
  try {
    await runConnected(config, extra, logger, metrics, (w) => (worker = w));
  } finally {
    await metricsServer?.close();
  }
}

/**
 * The Temporal SDK logs through its Runtime: the worker's own lines, the workflows' `log` (a
 * sink the SDK calls only when not replaying) and the activities' `log`, each with its
 * workflow and activity fields; the Rust core's lines are forwarded too (WARN and above, or
 * as verbose as ROLLOUT_LOG_LEVEL asks when that is debug or trace). Installed once per
 * process, before the first connection; a process that already has a Runtime (a test that
 * created one) keeps it.
 */
function installRuntimeLogger(logger: pino.Logger, settings: ObservabilitySettings): void {
  const level = TEMPORAL_LEVEL[settings.logLevel];
  const coreLevel = settings.logLevel === 'trace' || settings.logLevel === 'debug' ? level : 'WARN';
  try {
    Runtime.install({ logger: new TemporalPinoLogger(logger.child({ component: 'temporal' })), telemetryOptions: { logging: { filter: { core: coreLevel, other: 'ERROR' }, forward: {} } } });
  } catch {
    logger.debug('a Temporal Runtime exists already in this process: its logger is kept');
  }
}

async function runConnected(
  config: WorkerConfig,
  extra: Parameters<typeof createWorker>[3],
  logger: pino.Logger,
  metrics: WorkerMetrics | undefined,
  onWorker: (worker: Worker) => void,
): Promise<void> {
  let worker: Worker | undefined;
  // A client of its own, for the activity that forwards the service workflow's control update;
  // opened first, with a deadline, so that an unreachable Temporal or a namespace it does not
  // have is said in one line before the worker itself is built.
  const clientConnection = await connectOrExplain(config);
  await warnOfMissingSearchAttributes(clientConnection, config.namespace, config.temporalAddress);
  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect(config.temporal.connectionOptions);
  } catch (err) {
    await clientConnection.close();
    throw await startError(err, config.temporal);
  }
  try {
    worker = await createWorker(config, connection, new Client({ connection: clientConnection, namespace: config.namespace }), extra, { metrics, logger });
    onWorker(worker);
    const run = worker.run();
    // `rollout dev` and the tests wait for this line (`worker ready`), JSON like every other.
    logger.info(
      { taskQueue: config.taskQueue, address: config.temporalAddress, namespace: config.namespace },
      `worker ready: task queue ${config.taskQueue} on ${config.temporalAddress}, namespace ${config.namespace}${config.temporal.tls ? ' (TLS)' : ''}`,
    );
    await run;
  } finally {
    // A stdin still being read would keep the process alive after the worker stopped.
    process.stdin.destroy();
    await clientConnection.close();
    await connection.close();
  }
}

/**
 * Says which rollout search attributes the namespace lacks, and the command that creates them.
 * Not a reason to stop: rollouts run without them (the workflows set only those it has).
 */
async function warnOfMissingSearchAttributes(connection: Connection, namespace: string, address: string): Promise<void> {
  try {
    for (const line of searchAttributeWarnings(await checkSearchAttributes(connection, namespace), namespace, address)) process.stderr.write(`warning: ${line}\n`);
  } catch (err) {
    process.stderr.write(`warning: could not list the search attributes of namespace ${namespace} (${err instanceof Error ? err.message : String(err)}): rollouts are not tagged while that fails\n`);
  }
}

/** gRPC status code 5. */
const GRPC_NOT_FOUND = 5;

/** What to set when Temporal is not there. */
const UNREACHABLE_HINT = 'start it (`rollout dev`) or set TEMPORAL_ADDRESS (or --address, or a --profile)';

/** A connection that failed, as a WorkerStartError saying why in one line. */
async function startError(err: unknown, target: TemporalTarget): Promise<WorkerStartError> {
  const failure = await explainConnectFailure(err, target);
  return new WorkerStartError(failure.kind === 'unreachable' ? `${failure.message}; ${UNREACHABLE_HINT}` : failure.message, failure.kind);
}

/** A client connection to Temporal that answers and has the namespace; otherwise a WorkerStartError. */
async function connectOrExplain(config: WorkerConfig): Promise<Connection> {
  let connection: Connection;
  try {
    connection = await connectAnswering(config.temporal);
  } catch (err) {
    throw await startError(err, config.temporal);
  }
  try {
    await connection.workflowService.describeNamespace({ namespace: config.namespace });
  } catch (err) {
    await connection.close();
    if (isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND) {
      const setting = config.temporal.from.namespace === 'default' ? 'TEMPORAL_NAMESPACE' : config.temporal.from.namespace;
      throw configError(`${setting}: Temporal at ${config.temporalAddress} has no namespace ${showValue(config.namespace)}`);
    }
    if (isCredentialsRefused(err)) throw new WorkerStartError(credentialsMessage(err, config.temporal), 'credentials');
    throw await startError(err, config.temporal);
  }
  return connection;
}
