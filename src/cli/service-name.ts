/** A service name given on the command line: the spec's own rule (src/spec/schema.ts), checked before anything is contacted. */
import { serviceNameSchema } from '../spec/schema';
import { CliError, ExitCode } from './errors';

/** `name` if it is a valid service name; otherwise invalid input (exit 2) saying what a name looks like. */
export function serviceArgument(name: string): string {
  const parsed = serviceNameSchema.safeParse(name);
  if (parsed.success) return parsed.data;
  throw new CliError(`<service>: ${parsed.error.issues[0]?.message ?? 'expected a service name'}`, ExitCode.invalidInput);
}
