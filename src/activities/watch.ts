/**
 * Watches a READY replica: its process must stay alive and its readiness probe must not fail
 * `failure_threshold` times in a row. Returns only by throwing (or when cancelled).
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Provider } from '../providers/types';
import { probeOnce } from '../providers/readiness';
import type { WatchReplicaInput } from './types';
import { FailureTypes } from './types';

export async function watchUntilUnhealthy(
  provider: Provider,
  input: WatchReplicaInput,
  signal: AbortSignal,
  onFailures: (consecutive: number) => void,
): Promise<void> {
  const periodMs = input.probe.period_seconds * 1000;
  let failures = 0;
  while (!signal.aborted) {
    const described = await provider.describe(input.replicaId);
    if (described.state !== 'running') {
      throw ApplicationFailure.create({
        type: FailureTypes.replicaDied,
        message: `replica ${input.replicaId} stopped (${described.exitInfo ?? described.state})`,
        nonRetryable: true,
      });
    }
    const probe = await probeOnce(input.endpoint + input.probe.path, input.probe.timeout_seconds * 1000);
    failures = probe.ok ? 0 : failures + 1;
    if (failures >= input.probe.failure_threshold) {
      throw ApplicationFailure.create({
        type: FailureTypes.replicaUnhealthy,
        message: `replica ${input.replicaId} failed ${failures} readiness probes in a row (last: ${probe.status ?? probe.error})`,
        nonRetryable: true,
      });
    }
    onFailures(failures);
    await new Promise<void>((resolve) => {
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve();
      };
      // One listener per period, removed when the period ends (otherwise they pile up on the signal).
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, periodMs);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
  // Cancelled: the rollout is done with this replica.
}
