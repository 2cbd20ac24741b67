/**
 * Waiting for a condition instead of sleeping for a guess: `check` is polled until it holds and
 * the wait ends at once. The timeout is only a backstop for a hang, so it is generous: a busy
 * 2-core CI machine can take seconds for what takes milliseconds here.
 */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000, pollMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
