/** Whether an error means Temporal could not be reached (exit code 3). No SDK import: `rollout router` stays light. */
export function isUnreachable(err: unknown): boolean {
  const text = err instanceof Error ? `${err.name} ${err.message}` : String(err);
  return /ServiceError|UNAVAILABLE|ECONNREFUSED|14 UNAVAILABLE|DEADLINE_EXCEEDED/.test(text);
}
