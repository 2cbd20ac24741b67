/** `rollout validate <spec.yaml>`: checks a spec offline; exit 2 with every bad field. */
import { formatIssues, loadSpecFile } from '../../spec/load';
import { CliError, ExitCode } from '../errors';

export async function validateCommand(specPath: string, opts: { output?: 'text' | 'json' }): Promise<number> {
  const loaded = await loadSpecFile(specPath);
  if (!loaded.ok) {
    if (opts.output === 'json') {
      process.stdout.write(JSON.stringify({ valid: false, issues: loaded.issues }, null, 2) + '\n');
      return ExitCode.invalidInput;
    }
    throw new CliError(`invalid spec ${specPath}:\n${formatIssues(loaded.issues)}`, ExitCode.invalidInput);
  }
  if (opts.output === 'json') process.stdout.write(JSON.stringify({ valid: true, spec: loaded.spec }, null, 2) + '\n');
  else process.stdout.write(`${specPath}: valid (service ${loaded.spec.name}, ${loaded.spec.replicas} replica(s), ${loaded.spec.rollout.strategy})\n`);
  return ExitCode.ok;
}
