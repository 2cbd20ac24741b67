/** `rollout dev`: starts the embedded stack and keeps it running until Ctrl-C. */
import { DevStackError, startDevStack } from '../../dev/stack';
import { awsConfigProblem } from '../../providers/aws/config';
import { describeSettings, loadConnectionConfig } from '../../temporal/connection-config';
import { CliError, ExitCode } from '../errors';

export interface DevCommandOptions {
  temporalPort: string;
  uiPort?: string;
  routerPort: string;
  routerAdminPort?: string;
  stateDir: string;
  gpus?: string;
  headless?: boolean;
  metricsPort?: string;
  persist?: boolean;
  dbFilename?: string;
}

export async function devCommand(opts: DevCommandOptions): Promise<number> {
  // Output piped into a reader that leaves (`| head`) must not crash the stack mid-way.
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  if (opts.gpus !== undefined && !/^\d{1,4}$/.test(opts.gpus)) {
    throw new CliError(`--gpus: expected a whole number of GPUs (0, 1, 2…), got ${JSON.stringify(opts.gpus)}`, ExitCode.invalidInput);
  }
  // The stack's worker would stop at once on a bad AWS config: said here, before anything starts.
  const awsProblem = awsConfigProblem(process.env);
  if (awsProblem) throw new CliError(awsProblem, ExitCode.invalidInput);
  if (opts.dbFilename !== undefined && !opts.persist) {
    throw new CliError('--db-filename: only with --persist (without it Temporal keeps its state in memory)', ExitCode.invalidInput);
  }
  const temporalPort = portFlag('--temporal-port', opts.temporalPort);
  const routerPort = portFlag('--router-port', opts.routerPort);
  const stack = await startDevStack({
    temporalPort,
    uiPort: opts.uiPort ? portFlag('--ui-port', opts.uiPort) : temporalPort + 1000,
    routerPort,
    routerAdminPort: opts.routerAdminPort ? portFlag('--router-admin-port', opts.routerAdminPort) : routerPort + 1,
    stateDir: opts.stateDir,
    gpus: opts.gpus === undefined ? undefined : Number(opts.gpus),
    headless: opts.headless,
    metricsPort: opts.metricsPort ? portFlag('--metrics-port', opts.metricsPort) : undefined,
    persist: opts.persist,
    dbFilename: opts.dbFilename,
    cliEntry: process.argv[1],
  }).catch((err: unknown) => {
    // No "ready:" line: the stack did not start (and stopped whatever part of it did).
    if (err instanceof DevStackError) throw new CliError(err.message, err.exitCode);
    throw err;
  });
  const parts = [`temporal ${stack.temporalAddress}`];
  if (stack.uiUrl) parts.push(`ui ${stack.uiUrl}`);
  parts.push(`router ${stack.routerUrl}`, `router-admin ${stack.routerAdminUrl}`);
  if (stack.metricsUrl) parts.push(`metrics ${stack.metricsUrl}`);
  process.stdout.write(`ready: ${parts.join(' · ')}\n`);
  // The CLI finds a dev server's UI at the Temporal port + 1000; another --ui-port has to be said.
  const uiEnv = stack.uiUrl && stack.uiUrl !== `http://127.0.0.1:${temporalPort + 1000}` ? ` TEMPORAL_UI_URL=${stack.uiUrl}` : '';
  // The user's own Temporal settings (a Cloud profile, an API key) would send the commands elsewhere
  // or over TLS: then the line says to leave them out. The stack's worker never reads them.
  const elsewhere = userSettingsElsewhere();
  const rollout = elsewhere ? `rollout --disable-config-file --disable-config-env --address ${stack.temporalAddress}` : `TEMPORAL_ADDRESS=${stack.temporalAddress}${uiEnv} rollout`;
  process.stdout.write(
    `  try: ${elsewhere && uiEnv ? `${uiEnv.trim()} ` : ''}${rollout} deploy examples/llm-service.yaml --wait\n` +
      (elsewhere ? `  note: your Temporal settings are for another server (${elsewhere}): the line above leaves them out\n` : '') +
      (opts.persist
        ? `  persist: Temporal state in ${stack.dbFilename}; stop: Ctrl-C (replicas keep serving; \`rollout dev --persist\` on this state dir adopts them)\n`
        : '  stop: Ctrl-C (terminates the replicas this stack started)\n'),
  );
  await new Promise<void>((resolve) => {
    const onSignal = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      void stack.stop().then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  return 0;
}

function portFlag(flag: string, text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) throw new CliError(`${flag}: expected a port number from 1 to 65535, got ${JSON.stringify(text)}`, ExitCode.invalidInput);
  return port;
}

/** What in the user's own connection settings would keep `rollout <command>` from this stack, or undefined. */
function userSettingsElsewhere(): string | undefined {
  try {
    const user = loadConnectionConfig();
    if (user.tls || user.connectionOptions.apiKey !== undefined || user.namespace !== 'default' || user.connectionOptions.metadata) {
      return `${describeSettings(user)}; namespace ${JSON.stringify(user.namespace)} from ${user.from.namespace}`;
    }
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}
