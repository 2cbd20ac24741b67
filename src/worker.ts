/**
 * Wires the providers, the router client and the activities into a Temporal worker.
 * `rollout worker` runs it from the environment; `rollout dev` runs it as a child process.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import fs from 'node:fs';
import path from 'node:path';
import { createActivities } from './activities';
import { LocalProvider } from './providers/local';
import { replicaUserFrom, type ReplicaUser } from './providers/local/replica-identity';
import type { Provider } from './providers/types';
import { RouterAdminClient } from './router/client';
import { TASK_QUEUE } from './workflows/types';

export interface WorkerConfig {
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
}

export function workerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) throw new Error(`${name} is not set`);
    return value;
  };
  return {
    temporalAddress: env.TEMPORAL_ADDRESS ?? 'localhost:7233',
    namespace: env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: env.ROLLOUT_TASK_QUEUE ?? TASK_QUEUE,
    stateDir: path.resolve(env.ROLLOUT_STATE_DIR ?? '.rollout'),
    gpus: env.ROLLOUT_GPUS !== undefined && env.ROLLOUT_GPUS !== '' ? Number(env.ROLLOUT_GPUS) : undefined,
    routerAdminUrl: required('ROUTER_ADMIN_URL'),
    routerToken: routerTokenFrom(env),
    routerPublicUrl: required('ROUTER_PUBLIC_URL'),
    replicaUser: replicaUserFrom(env.ROLLOUT_REPLICA_USER, process.getuid?.() ?? -1, () => fs.readFileSync('/etc/passwd', 'utf8')),
  };
}

/**
 * The router's admin token: from ROUTER_TOKEN_FILE (preferred: it never enters the worker's
 * environment, which its child processes could read in /proc/<pid>/environ) or ROUTER_TOKEN.
 */
function routerTokenFrom(env: NodeJS.ProcessEnv): string {
  if (env.ROUTER_TOKEN_FILE) {
    const token = fs.readFileSync(env.ROUTER_TOKEN_FILE, 'utf8').trim();
    if (!token) throw new Error(`ROUTER_TOKEN_FILE ${env.ROUTER_TOKEN_FILE} is empty`);
    return token;
  }
  if (env.ROUTER_TOKEN) return env.ROUTER_TOKEN;
  throw new Error('ROUTER_TOKEN_FILE (or ROUTER_TOKEN) is not set');
}

export function createProviders(config: Pick<WorkerConfig, 'stateDir' | 'gpus' | 'replicaUser'>): Record<string, Provider> {
  return { local: new LocalProvider({ stateDir: path.join(config.stateDir, 'local'), gpus: config.gpus, replicaUser: config.replicaUser }) };
}

/** Path of the workflow bundle's entry, from src/ (tests) or dist/ (the CLI). */
export const workflowsPath = require.resolve('./workflows');

export async function createWorker(config: WorkerConfig, connection: NativeConnection, temporalClient?: Client): Promise<Worker> {
  const activities = createActivities({
    temporalClient,
    providers: createProviders(config),
    router: new RouterAdminClient(config.routerAdminUrl, config.routerToken),
    routerPublicUrl: config.routerPublicUrl,
  });
  return Worker.create({
    connection,
    namespace: config.namespace,
    taskQueue: config.taskQueue,
    workflowsPath,
    activities,
  });
}

/** Runs until SIGINT/SIGTERM; prints `worker ready` once polling. */
export async function runWorker(config: WorkerConfig): Promise<void> {
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
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  // A client of its own, for the activity that forwards the service workflow's control update.
  const clientConnection = await Connection.connect({ address: config.temporalAddress });
  try {
    worker = await createWorker(config, connection, new Client({ connection: clientConnection, namespace: config.namespace }));
    const run = worker.run();
    process.stdout.write(`worker ready: task queue ${config.taskQueue} on ${config.temporalAddress}\n`);
    await run;
  } finally {
    // A stdin still being read would keep the process alive after the worker stopped.
    process.stdin.destroy();
    await clientConnection.close();
    await connection.close();
  }
}
