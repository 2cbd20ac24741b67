/** Bounds for the CLI's calls to many workflows at once: how many in flight, and how long each. */
import type { Client } from '@temporalio/client';
import { TASK_QUEUE } from '../workflows/types';

/** Runs `fn` over `items` with at most `limit` calls in flight; results in the items' order. */
export async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  return results;
}

export class QueryTimeout extends Error {}

/**
 * `call` (a query: answered by a worker, so it can wait for one forever), aborted after `ms`, not
 * just abandoned: the client would go on retrying it after the connection is closed.
 */
export async function answerWithin<T>(client: Client, ms: number, call: () => Promise<T>, what: string): Promise<T> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), ms);
  try {
    return await client.withAbortSignal(abort.signal, call);
  } catch (err) {
    if (abort.signal.aborted) throw new QueryTimeout(`no answer to ${what} within ${ms / 1000} s (is a worker polling task queue ${TASK_QUEUE}?)`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
