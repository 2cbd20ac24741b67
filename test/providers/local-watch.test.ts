/**
 * Watches over local replicas hear of a process's exit as it happens (the provider's
 * whenAnyStops, fed by its children's exit events) instead of at the next probe: with a probe
 * period of an hour, a replica killed after the watch's first round is still reported lost.
 * Real processes; each test its own state dir, every replica terminated afterwards.
 */
import { ApplicationFailure } from '@temporalio/common';
import { watchFleetUntilLost, watchUntilUnhealthy } from '../../src/activities/watch';
import type { ReadinessProbeSpec } from '../../src/spec/types';
import { waitUntil } from '../helpers/wait';
import { answers, eventually, launchRequest, ProviderSandbox, serverRun } from './replica-fixture';

const HOUR_PROBE: ReadinessProbeSpec = { path: '/health', initial_delay_seconds: 60, period_seconds: 3600, timeout_seconds: 5, failure_threshold: 3 };

let sandbox: ProviderSandbox;
beforeEach(() => {
  sandbox = new ProviderSandbox();
});
afterEach(async () => {
  await sandbox.cleanup();
});


describe('LocalProvider.whenAnyStops', () => {
  it('resolves when one of the replicas exits, and describe then says exited', async () => {
    const provider = sandbox.provider();
    const since = Date.now();
    await provider.launch(launchRequest('a', { run: serverRun({ EXIT_AFTER_MS: '300' }) }));
    await provider.launch(launchRequest('b'));
    let bStopped = false;
    const aborting = new AbortController();
    const b = provider.whenAnyStops(['b'], since, aborting.signal).then(() => (bStopped = true));
    // Launched before the call: an exit at or after `since` counts even if it came first.
    await provider.whenAnyStops(['a'], since, new AbortController().signal);
    expect(await provider.describe('a')).toMatchObject({ state: 'exited' });
    // b's wait heard a's exit too, and ignored it.
    expect(bStopped).toBe(false);
    aborting.abort();
    await b;
    expect(await provider.describe('b')).toMatchObject({ state: 'running' });
  });

  it('does not count an exit from before `since`', async () => {
    const provider = sandbox.provider();
    await provider.launch(launchRequest('a', { run: serverRun({ EXIT_AFTER_MS: '100' }) }));
    await provider.whenAnyStops(['a'], 0, new AbortController().signal);
    let stopped = false;
    const aborting = new AbortController();
    const wait = provider.whenAnyStops(['a'], Date.now() + 1, aborting.signal).then(() => (stopped = true));
    await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(false);
    aborting.abort();
    await wait;
  });
});

describe('watches over local replicas', () => {
  it('watchReplica: a replica killed after the first probe is lost at once, not at the next probe an hour later', async () => {
    const provider = sandbox.provider();
    const handle = await provider.launch(launchRequest('r0'));
    await eventually(() => answers(handle.endpoint), 30_000, 'the replica to answer');
    let rounds = 0;
    const watching = watchUntilUnhealthy(provider, { replicaId: 'r0', provider: 'local', endpoint: handle.endpoint, probe: HOUR_PROBE }, new AbortController().signal, () => (rounds += 1));
    const outcome = watching.then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitUntil(async () => rounds === 1, 'the watch to finish its first round', 30_000, 10);
    process.kill(Number(handle.externalId), 'SIGKILL');
    const err = await outcome;
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe('ReplicaDied');
    expect(rounds).toBe(1);
  });

  it('watchFleet: a replica killed after the first round is returned lost at once', async () => {
    const provider = sandbox.provider();
    const handles = await Promise.all(['r0', 'r1'].map((id) => provider.launch(launchRequest(id))));
    await Promise.all(handles.map((h) => eventually(() => answers(h.endpoint), 30_000, `${h.replicaId} to answer`)));
    const failures: Record<string, number> = {};
    const input = { service: 'llm', provider: 'local', probe: HOUR_PROBE, maxWatchMs: 2 * 3600_000, replicas: handles.map((h) => ({ replicaId: h.replicaId, endpoint: h.endpoint })) };
    const watching = watchFleetUntilLost(provider, input, new AbortController().signal, failures);
    // The first round's judgements are written just before its wait for the next one.
    await waitUntil(async () => 'r0' in failures && 'r1' in failures, 'the watch to finish its first round', 30_000, 10);
    process.kill(Number(handles[1].externalId), 'SIGKILL');
    const { lost } = await watching;
    expect(lost).toEqual([{ replicaId: 'r1', reason: expect.stringContaining('killed by SIGKILL') }]);
    expect(await provider.describe('r0')).toMatchObject({ state: 'running' });
  });
});
