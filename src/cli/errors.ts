/** Exit codes of the `rollout` command (documented in the README). */
export const ExitCode = {
  ok: 0,
  /** The rollout rolled back or failed, or the thing asked for does not exist. */
  failed: 1,
  /** Invalid input: nothing was started or touched. */
  invalidInput: 2,
  /** Temporal or the infrastructure could not be reached. */
  unreachable: 3,
} as const;

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
