/** The innermost message of a failure chain (ActivityFailure → ApplicationFailure → …). Workflow-safe. */
export function failureMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
