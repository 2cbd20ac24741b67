/** `rollout dev`: starts the embedded stack and keeps it running until Ctrl-C. */
import { startDevStack } from '../../dev/stack';

export interface DevCommandOptions {
  temporalPort: string;
  uiPort?: string;
  routerPort: string;
  routerAdminPort?: string;
  stateDir: string;
  gpus?: string;
  headless?: boolean;
}

export async function devCommand(opts: DevCommandOptions): Promise<number> {
  const temporalPort = Number(opts.temporalPort);
  const routerPort = Number(opts.routerPort);
  const stack = await startDevStack({
    temporalPort,
    uiPort: opts.uiPort ? Number(opts.uiPort) : temporalPort + 1000,
    routerPort,
    routerAdminPort: opts.routerAdminPort ? Number(opts.routerAdminPort) : routerPort + 1,
    stateDir: opts.stateDir,
    gpus: opts.gpus === undefined ? undefined : Number(opts.gpus),
    headless: opts.headless,
    cliEntry: process.argv[1],
  });
  const parts = [`temporal ${stack.temporalAddress}`];
  if (stack.uiUrl) parts.push(`ui ${stack.uiUrl}`);
  parts.push(`router ${stack.routerUrl}`, `router-admin ${stack.routerAdminUrl}`);
  process.stdout.write(`ready: ${parts.join(' · ')}\n`);
  process.stdout.write(
    `  try: TEMPORAL_ADDRESS=${stack.temporalAddress} rollout deploy examples/llm-service.yaml --wait\n  stop: Ctrl-C (terminates the replicas this stack started)\n`,
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
