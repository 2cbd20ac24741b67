/**
 * The worker's side of the replica-state reports (WorkerMetrics.replicaStatesReported), as pure
 * code: the latest report per service is counted, a clear removes only the clearer's own report,
 * and every state of every provider the worker has is a series. The workflows' side runs on a
 * real server in test/workflows/metrics-sinks and test/e2e/metrics.
 */
import { WorkerMetrics } from '../../src/observability/metrics';
import type { Provider } from '../../src/providers/types';
import { parseSamples } from '../../src/router/prometheus-text';
import type { ReplicaStateReport } from '../../src/workflows/metrics-sink';

const gauge = async (metrics: WorkerMetrics): Promise<Record<string, number>> =>
  Object.fromEntries(parseSamples(await metrics.registry.metrics(), new Set(['rollout_replicas'])).map((s) => [`${s.labels.provider}/${s.labels.state}`, s.value]));
const nonZero = (g: Record<string, number>) => Object.fromEntries(Object.entries(g).filter(([, v]) => v !== 0));
const replicas = (...states: ReplicaStateReport['state'][]): ReplicaStateReport[] => states.map((state, i) => ({ replicaId: `r${i}`, provider: 'local', state }));

test('the latest report per service counts; the rollout replaces the service and back, never both', async () => {
  const metrics = new WorkerMetrics();
  metrics.replicaStatesReported('service-a', 'a', replicas('READY', 'READY'));
  metrics.replicaStatesReported('service-b', 'b', replicas('READY'));
  expect(nonZero(await gauge(metrics))).toEqual({ 'local/READY': 3 });
  // The rollout of a reports before the service's clear arrives: the clear is not the owner's, so it does nothing.
  metrics.replicaStatesReported('rollout-a-v2', 'a', replicas('READY', 'READY', 'STARTING'));
  metrics.replicaStatesReported('service-a', 'a', []);
  expect(nonZero(await gauge(metrics))).toEqual({ 'local/READY': 3, 'local/STARTING': 1 });
  // The rollout ends (its clear is its own), the service reports what it got back.
  metrics.replicaStatesReported('rollout-a-v2', 'a', []);
  expect(nonZero(await gauge(metrics))).toEqual({ 'local/READY': 1 });
  metrics.replicaStatesReported('service-a', 'a', replicas('READY', 'FAILED'));
  expect(nonZero(await gauge(metrics))).toEqual({ 'local/READY': 2, 'local/FAILED': 1 });
  // A late clear from the ended rollout does not erase the service's newer report.
  metrics.replicaStatesReported('rollout-a-v2', 'a', []);
  expect(nonZero(await gauge(metrics))).toEqual({ 'local/READY': 2, 'local/FAILED': 1 });
});

test("every state of each of the worker's providers is a series, 0 when no replica is in it", async () => {
  const metrics = new WorkerMetrics();
  // Only its name matters here (and its listing, for rollout_replica_processes: none).
  metrics.observeProviders({ local: { list: () => Promise.resolve([]) } as unknown as Provider });
  const g = await gauge(metrics);
  expect(g).toEqual({ 'local/PROVISIONING': 0, 'local/STARTING': 0, 'local/READY': 0, 'local/NOT_READY': 0, 'local/SHUTTING_DOWN': 0, 'local/FAILED': 0, 'local/TERMINATED': 0 });
});
