#!/usr/bin/env node
/**
 * The `rollout` command. Each subcommand returns its exit code; errors print one clear line
 * (no stack trace) and exit with the code they carry (see errors.ts).
 */
import { Command, Option } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../temporal/project-root';
import type { ConnectionFlags } from '../temporal/connection-config';
import type { ControlAction } from '../workflows/types';
import type { ControlOptions } from './commands/control';
import type { GcOptions } from './commands/gc';
import { CliError, ExitCode } from './errors';
import { describeFailure } from './failure-text';

// Commands are loaded when run, so `rollout router` and `rollout worker` do not carry the
// modules of the others (the Temporal client's protobufs weigh ~20 MB of heap in the router).
const devCommand = async (...a: Parameters<typeof import('./commands/dev').devCommand>) => (await import('./commands/dev')).devCommand(...a);
const deployCommand = async (...a: Parameters<typeof import('./commands/deploy').deployCommand>) => (await import('./commands/deploy')).deployCommand(...a);
const planCommand = async (...a: Parameters<typeof import('./commands/plan').planCommand>) => (await import('./commands/plan')).planCommand(...a);
const statusCommand = async (...a: Parameters<typeof import('./commands/status').statusCommand>) => (await import('./commands/status')).statusCommand(...a);
const validateCommand = async (...a: Parameters<typeof import('./commands/validate').validateCommand>) => (await import('./commands/validate')).validateCommand(...a);
const gcCommand = async (...a: Parameters<typeof import('./commands/gc').gcCommand>) => (await import('./commands/gc')).gcCommand(...a);
const listCommand = async (...a: Parameters<typeof import('./commands/list').listCommand>) => (await import('./commands/list')).listCommand(...a);
const historyCommand = async (...a: Parameters<typeof import('./commands/history').historyCommand>) => (await import('./commands/history')).historyCommand(...a);
const controlCommand = async (action: ControlAction, service: string, opts: ControlOptions) => (await import('./commands/control')).controlCommand(action, service, opts);

const outputOption = () => new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text');

function action<A extends unknown[]>(fn: (...args: A) => Promise<number>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = await fn(...args);
    } catch (err) {
      const failure = describeFailure(err);
      process.stderr.write(`error: ${failure.message}\n`);
      // `-o json`: a pipeline parsing stdout gets the error as JSON too (the text stays on stderr).
      if (args.some(wantsJson)) process.stdout.write(JSON.stringify({ error: { message: failure.message, exitCode: failure.exitCode } }) + '\n');
      process.exitCode = failure.exitCode;
    }
  };
}

/** Commander hands each action its options object: `--output json` there. */
function wantsJson(arg: unknown): boolean {
  return typeof arg === 'object' && arg !== null && (arg as { output?: unknown }).output === 'json';
}

/** The connection flags, given before or after the command (`rollout --profile cloud status llm`). */
const CONNECTION_OPTIONS = ['profile', 'configFile', 'address', 'namespace', 'disableConfigFile', 'disableConfigEnv'] as const;

/**
 * grpc-js sets the TLS server name to the host even when it is an IP address, and Node warns about
 * that once (DEP0123) in the middle of our one-line messages; the certificate is still checked
 * against the address. Every other warning is printed as usual.
 */
let warningsQuieted = false;
function quietIpServerNameWarning(): void {
  if (warningsQuieted) return;
  warningsQuieted = true;
  const emitWarning = process.emitWarning.bind(process) as (...a: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: unknown }).code : rest[1];
    if (code === 'DEP0123' || (warning instanceof Error && (warning as { code?: unknown }).code === 'DEP0123')) return;
    emitWarning(warning, ...rest);
  }) as typeof process.emitWarning;
}

export function buildProgram(): Command {
  quietIpServerNameWarning();
  const program = new Command('rollout')
    .description(
      'Durable rollouts of GPU inference services on Temporal.\n' +
        'Connection, as the temporal CLI reads it (each over the one before): a profile of the TOML config file\n' +
        '(TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml; TEMPORAL_PROFILE, else "default"); then TEMPORAL_ADDRESS\n' +
        '(default localhost:7233), TEMPORAL_NAMESPACE (default "default"), TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_*; then the flags below.',
    )
    .option('--profile <name>', 'the config file\'s profile to connect with (overrides TEMPORAL_PROFILE)')
    .option('--config-file <path>', 'the TOML config file (overrides TEMPORAL_CONFIG_FILE)')
    .option('--address <host:port>', 'Temporal\'s gRPC address (overrides TEMPORAL_ADDRESS and the profile)')
    .option('-n, --namespace <name>', 'the Temporal namespace (overrides TEMPORAL_NAMESPACE and the profile)')
    .option('--disable-config-file', 'read no config file')
    .option('--disable-config-env', 'apply no TEMPORAL_* variable over the profile (TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE still choose it)')
    .version((JSON.parse(fs.readFileSync(path.join(projectRoot(), 'package.json'), 'utf8')) as { version: string }).version)
    // One line for a usage error, as for every other bad input (the usage is one `--help` away).
    .showHelpAfterError(false)
    // Commander puts its suggestion on a line of its own: keep it on the error's.
    .configureOutput({ outputError: (text, write) => write(text.replace(/\n\(Did you mean (.*)\?\)\n$/, ' (did you mean $1?)\n')) })
    .exitOverride((err) => {
      // Usage errors (unknown option, missing argument) are invalid input: exit 2.
      process.exit(err.exitCode === 0 ? 0 : ExitCode.invalidInput);
    });
  const connection = (): ConnectionFlags => {
    const opts = program.opts<ConnectionFlags>();
    return Object.fromEntries(CONNECTION_OPTIONS.filter((o) => opts[o] !== undefined).map((o) => [o, opts[o]])) as ConnectionFlags;
  };

  program
    .command('dev')
    .description('run the embedded stack: Temporal dev server + Web UI, worker, router, local provider')
    .option('--temporal-port <port>', 'Temporal gRPC port', '7233')
    .option('--ui-port <port>', 'Temporal Web UI port (default: temporal port + 1000)')
    .option('--router-port <port>', 'router traffic port', '8080')
    .option('--router-admin-port <port>', 'router admin API port (default: router port + 1)')
    .option('--state-dir <dir>', 'replica records, logs and the route table', '.rollout')
    .option('--gpus <n>', 'GPUs the local provider may hand out (default: detect with nvidia-smi)')
    .option('--headless', 'do not start the Web UI')
    .option('--metrics-port <port>', "the worker's Prometheus /metrics and /healthz port on 127.0.0.1 (default: none)")
    .option('--persist', 'a durable single box: Temporal state in SQLite, replicas left serving on stop and adopted at the next start')
    .option('--db-filename <path>', 'with --persist: the SQLite file of Temporal\'s state (default: the one the state dir recorded, else <state-dir>/temporal.db)')
    .action(
      action((opts: Parameters<typeof devCommand>[0]) => {
        // The stack runs its own Temporal and points its worker at it: a connection flag would be ignored, so it is refused.
        const given = CONNECTION_OPTIONS.filter((o) => program.getOptionValueSource(o) === 'cli');
        if (given.length) {
          const flag = program.options.find((o) => o.attributeName() === given[0])?.long ?? given[0];
          throw new CliError(`${flag}: rollout dev runs its own Temporal (see --temporal-port); the connection flags are for the commands that connect to one`, ExitCode.invalidInput);
        }
        return devCommand(opts);
      }),
    );

  program
    .command('deploy')
    .description('roll out a spec: a new version of the service (starts the service if new)')
    .argument('<spec>', 'service spec (YAML)')
    .option('--wait', 'follow the rollout; exit 0 when the new version serves all traffic, 1 when it rolled back or failed')
    .option('--force', 'roll out new replicas even when the change could be applied in place (or nothing changed)')
    .option('--canary-percent <percent>', 'start in manual mode: hold the canary at this percent (0–100) until resume, advance, promote or rollback')
    .addOption(outputOption())
    .action(action((spec: string, opts: { wait?: boolean; force?: boolean; canaryPercent?: string; output: 'text' | 'json' }) => deployCommand(spec, { ...opts, connection: connection() })));

  program
    .command('status')
    .description('show the serving version, endpoint, traffic split and replicas of a service')
    .argument('<service>', 'service name')
    .option('--watch', 'keep watching (every 1 s): redrawn in a terminal, else a line (or with -o json an object) per change; Ctrl-C ends it')
    .addOption(outputOption())
    .action(action((service: string, opts: { output: 'text' | 'json'; watch?: boolean }) => statusCommand(service, { ...opts, connection: connection() })));

  program
    .command('list')
    .description('every service: version, status, ready/total replicas, active rollout, endpoint')
    .addOption(outputOption())
    .action(action((opts: { output: 'text' | 'json' }) => listCommand({ ...opts, connection: connection() })));

  program
    .command('history')
    .description("a service's rollouts, newest first: version, strategy, outcome, start, duration, why it ended, UI link")
    .argument('<service>', 'service name')
    .option('--limit <n>', 'at most this many rollouts (1–1000)', '20')
    .addOption(outputOption())
    .action(action((service: string, opts: { output: 'text' | 'json'; limit?: string }) => historyCommand(service, { ...opts, connection: connection() })));

  for (const [name, description] of [
    ['pause', 'hold the active rollout where it is (traffic stays put; its timeout and timed pauses stop counting)'],
    ['resume', 'continue a paused rollout, or leave manual mode and continue its steps'],
    ['advance', 'go to the next canary step now (ends a pause; leaves manual mode)'],
    ['promote', 'go to 100% now: skip the remaining steps and pauses'],
    ['rollback', 'send all traffic back to the serving version and remove the new replicas'],
  ] as const) {
    const cmd = program.command(name).description(description).argument('<service>', 'service name').addOption(outputOption());
    if (name === 'rollback') cmd.option('--reason <text>', 'recorded in the rollout history');
    cmd.action(action((service: string, opts: ControlOptions) => controlCommand(name, service, { ...opts, connection: connection() })));
  }

  program
    .command('set-canary')
    .description('manual mode: move the canary\'s traffic to <percent> (0–100) and hold there; the timeout no longer rolls back')
    .argument('<service>', 'service name')
    .argument('<percent>', 'the canary\'s share of traffic, 0–100')
    .addOption(outputOption())
    .action(action((service: string, percent: string, opts: ControlOptions) => controlCommand('setCanaryPercent', service, { ...opts, percent, connection: connection() })));

  program
    .command('validate')
    .description('check a spec without contacting anything')
    .argument('<spec>', 'service spec (YAML)')
    .addOption(outputOption())
    .action(action((spec: string, opts: { output: 'text' | 'json' }) => validateCommand(spec, opts)));

  program
    .command('plan')
    .description('show the stages a deploy of a spec would go through (replicas and traffic per version); starts and changes nothing')
    .argument('<spec>', 'service spec (YAML)')
    .option('--force', 'plan as if every replica were replaced, even when nothing or only scaling changed')
    .addOption(outputOption())
    .action(action((spec: string, opts: { force?: boolean; output: 'text' | 'json' }) => planCommand(spec, { ...opts, connection: connection() })));

  program
    .command('gc')
    .description("terminate the replicas the providers hold for a service that none of its versions owns (EC2 instances tagged for it, found by tag); refused during a rollout")
    .argument('<service>', 'service name')
    .option('--dry-run', 'list the strays, terminate nothing')
    .addOption(outputOption())
    .action(action((service: string, opts: GcOptions) => gcCommand(service, { ...opts, connection: connection() })));

  const runWorkerAction = action(async (opts: { metricsPort?: string }) => {
    const { runWorker, workerConfigFromEnv, WorkerStartError } = await import('../worker');
    try {
      await runWorker(workerConfigFromEnv(process.env, connection(), opts));
      return 0;
    } catch (err) {
      // A bad setting (exit 2) or Temporal not answering (exit 3): the one line that says which.
      if (err instanceof WorkerStartError) throw new CliError(err.message, err.reason === 'config' ? ExitCode.invalidInput : ExitCode.unreachable);
      throw err;
    }
  });

  program
    .command('worker')
    .description('run a Temporal worker (configured by environment; see README)')
    .option('--metrics-port <port>', 'serve Prometheus /metrics and /healthz on this port (over ROLLOUT_METRICS_PORT; 0: none)')
    .action(async (opts: { metricsPort?: string }) => {
      await runWorkerAction(opts);
      // A worker that failed has said why; the SDK's native runtime can keep the process alive after
      // a failed Worker.create (it did for a missing namespace), so it must not linger.
      if (process.exitCode) process.exit(process.exitCode);
    });

  program
    .command('router')
    .description('run the traffic router (configured by environment; see README)')
    .action(action(async () => {
      const [{ runRouterCommand }, { RouterStartError }, { RouterBinaryMissingError }] = await Promise.all([import('../router/main'), import('../router/server'), import('../router/binary')]);
      try {
        return await runRouterCommand();
      } catch (err) {
        // A bad setting or state file (exit 2) or a port in use: the router said what is wrong.
        if (err instanceof RouterStartError) throw new CliError(err.message, err.exitCode === ExitCode.invalidInput ? ExitCode.invalidInput : ExitCode.failed);
        if (err instanceof RouterBinaryMissingError) throw new CliError(err.message, ExitCode.failed);
        throw err;
      }
    }));

  return program;
}

if (require.main === module) {
  void buildProgram().parseAsync(process.argv);
}
