/** waitUntilReady against real replica processes started by the local provider. */
import net from 'node:net';
import { freePort } from '../helpers/ports';
import { LocalProvider } from '../../src/providers/local';
import { probeOnce, probePhaseMs, ReplicaDiedError, ReplicaNotReadyError, waitUntilReady, type ProbeReport } from '../../src/providers/readiness';
import { launchRequest, ProviderSandbox, serverRun } from './replica-fixture';

let sandbox: ProviderSandbox;
let provider: LocalProvider;
beforeEach(() => {
  sandbox = new ProviderSandbox();
  provider = sandbox.provider();
});
afterEach(async () => {
  await sandbox.cleanup();
});

/** What the activity passes: the provider's view of the process. */
const aliveCheck = (replicaId: string) => async () => {
  const d = await provider.describe(replicaId);
  return { alive: d.state === 'running', detail: d.exitInfo ?? d.state };
};

describe('waitUntilReady', () => {
  it('returns once /health turns 200 (after about a second of 503s and refused connections)', async () => {
    const handle = await provider.launch(launchRequest('r0', { run: serverRun({ READY_AFTER_MS: '1000' }) }));
    const probes: ProbeReport[] = [];
    const result = await waitUntilReady({
      endpoint: handle.endpoint,
      path: '/health',
      periodMs: 100,
      timeoutMs: 1000,
      deadline: Date.now() + 60_000,
      isAlive: aliveCheck('r0'),
      onProbe: (r) => probes.push(r),
    });
    expect(result.ready).toBe(true);
    expect(result.attempts).toBeGreaterThan(3);
    expect(result.elapsedMs).toBeGreaterThanOrEqual(800);
    expect(probes).toHaveLength(result.attempts);
    expect(probes.some((p) => p.status === 503)).toBe(true);
    expect(probes[probes.length - 1].status).toBe(200);
  });

  it('throws ReplicaNotReadyError with the last probe once the deadline passes', async () => {
    const handle = await provider.launch(launchRequest('r0', { run: serverRun({ READY_AFTER_MS: '600000' }) }));
    const started = Date.now();
    const err = await waitUntilReady({
      endpoint: handle.endpoint,
      path: '/health',
      periodMs: 100,
      timeoutMs: 1000,
      deadline: Date.now() + 1500,
      isAlive: aliveCheck('r0'),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplicaNotReadyError);
    expect((err as Error).message).toMatch(/not ready after \ds .*last probe: HTTP 503/);
    expect(Date.now() - started).toBeLessThan(15_000); // soon after the 1.5 s deadline, not the 600 s load
  });

  it('throws ReplicaDiedError quickly, with the exit code and log, when the process exits', async () => {
    const handle = await provider.launch(launchRequest('r0', { run: serverRun({ READY_AFTER_MS: '600000', EXIT_AFTER_MS: '300', EXIT_CODE: '7' }) }));
    const started = Date.now();
    const err = await waitUntilReady({
      endpoint: handle.endpoint,
      path: '/health',
      periodMs: 100,
      timeoutMs: 1000,
      deadline: Date.now() + 60_000,
      isAlive: aliveCheck('r0'),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplicaDiedError);
    expect((err as Error).message).toContain('exit code 7');
    expect((err as Error).message).toContain('fatal: could not load model weights');
    expect(Date.now() - started).toBeLessThan(30_000); // long before the 60 s deadline
  });

  it('stops promptly with an AbortError when the signal aborts', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const started = Date.now();
    const err = await waitUntilReady({
      endpoint: `http://127.0.0.1:${await freePort()}`,
      path: '/health',
      periodMs: 10_000,
      timeoutMs: 1000,
      deadline: Date.now() + 60_000,
      isAlive: async () => ({ alive: true }),
      signal: controller.signal,
    }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    expect(Date.now() - started).toBeLessThan(8000); // before the next 10 s probe period
  });

  it('throws the abort reason itself when it is an Error (Temporal passes a CancelledFailure)', async () => {
    const reason = new Error('activity cancelled');
    const err = await waitUntilReady({
      endpoint: 'http://127.0.0.1:1',
      path: '/health',
      periodMs: 100,
      timeoutMs: 100,
      deadline: Date.now() + 60_000,
      isAlive: async () => ({ alive: true }),
      signal: AbortSignal.abort(reason),
    }).catch((e: unknown) => e);
    expect(err).toBe(reason);
  });
});

describe('probeOnce', () => {
  it('reports a refused connection as data, not an exception', async () => {
    const result = await probeOnce(`http://127.0.0.1:${await freePort()}/health`, 1000);
    expect(result.ok).toBe(false);
    expect(result.error).toContain('ECONNREFUSED');
  });

  it('times out a server that never answers', async () => {
    const silent = net.createServer(() => undefined).listen(0, '127.0.0.1');
    await new Promise((resolve) => silent.once('listening', resolve));
    try {
      const { port } = silent.address() as net.AddressInfo;
      const started = Date.now();
      const result = await probeOnce(`http://127.0.0.1:${port}/health`, 300);
      expect(result).toEqual({ ok: false, error: 'timed out after 300 ms' });
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      silent.close();
    }
  });

  it('is ok for a 2xx answer', async () => {
    const handle = await provider.launch(launchRequest('r0'));
    await waitUntilReady({ endpoint: handle.endpoint, path: '/health', periodMs: 50, timeoutMs: 500, deadline: Date.now() + 60_000, isAlive: aliveCheck('r0') });
    expect(await probeOnce(`${handle.endpoint}/health`, 1000)).toEqual({ ok: true, status: 200 });
  });
});

describe('probePhaseMs', () => {
  test('lies in (0, period] and spreads consecutive replicas over the period (mean about half of it)', () => {
    for (const n of [1, 4, 8, 16, 64]) {
      const phases = Array.from({ length: n }, (_, i) => probePhaseMs(`llm-v2-r${i + 3}`, 1000));
      for (const p of phases) {
        expect(p).toBeGreaterThan(0);
        expect(p).toBeLessThanOrEqual(1000);
      }
      const mean = phases.reduce((a, b) => a + b, 0) / n;
      // Low discrepancy: n golden-ratio points average within 1/n of the middle.
      expect(Math.abs(mean - 500)).toBeLessThanOrEqual(1000 / n + 1);
    }
  });

  test('an id without a sequence number gets a phase too', () => {
    expect(probePhaseMs('odd', 2000)).toBe(2000);
  });
});

describe('waitUntilReady with a phase', () => {
  it('probes first at once, then after the phase, then every period', async () => {
    const handle = await provider.launch(launchRequest('r9', { run: serverRun({ READY_AFTER_MS: '600000' }) }));
    const probes: ProbeReport[] = [];
    await waitUntilReady({
      endpoint: handle.endpoint,
      path: '/health',
      periodMs: 400,
      phaseMs: 100,
      timeoutMs: 1000,
      deadline: Date.now() + 1900,
      isAlive: aliveCheck('r9'),
      onProbe: (r) => probes.push(r),
    }).catch(() => undefined);
    // Due at 0, 100, 500, 900, 1300, 1700 ms (and one at the deadline): each probe no earlier than due.
    const due = [0, 100, 500, 900, 1300, 1700];
    expect(probes.length).toBeGreaterThanOrEqual(3);
    probes.slice(0, due.length).forEach((p, i) => expect(p.elapsedMs).toBeGreaterThanOrEqual(due[i] - 5));
  });
});

describe('waitUntilReady with extra probes (a load time learned from earlier replicas)', () => {
  it('probes at the extra times too, in order with the schedule', async () => {
    const handle = await provider.launch(launchRequest('r10', { run: serverRun({ READY_AFTER_MS: '600000' }) }));
    const probes: ProbeReport[] = [];
    await waitUntilReady({
      endpoint: handle.endpoint,
      path: '/health',
      periodMs: 400,
      phaseMs: 100,
      extraProbesAtMs: [700, 250, -5],
      timeoutMs: 1000,
      deadline: Date.now() + 1100,
      isAlive: aliveCheck('r10'),
      onProbe: (r) => probes.push(r),
    }).catch(() => undefined);
    // Due at 0, 100, 250 (extra), 500, 700 (extra), 900 ms: each probe no earlier than due.
    const due = [0, 100, 250, 500, 700, 900];
    expect(probes.length).toBeGreaterThanOrEqual(4);
    probes.slice(0, due.length).forEach((p, i) => expect(p.elapsedMs).toBeGreaterThanOrEqual(due[i] - 5));
  });

  it('an extra probe comes between scheduled ones a period apart', async () => {
    const handle = await provider.launch(launchRequest('r12', { run: serverRun({ READY_AFTER_MS: '600000' }) }));
    const probes: ProbeReport[] = [];
    await waitUntilReady({ endpoint: handle.endpoint, path: '/health', periodMs: 60_000, phaseMs: 60_000, extraProbesAtMs: [300], timeoutMs: 1000, deadline: Date.now() + 3000, isAlive: aliveCheck('r12'), onProbe: (r) => probes.push(r) }).catch(() => undefined);
    // At once, the extra one, and one at the deadline; without the extra, two.
    expect(probes).toHaveLength(3);
    expect(probes[1]?.elapsedMs).toBeGreaterThanOrEqual(295);
  });

  it('says when it saw the replica ready and last saw it not ready: bounds of its load time', async () => {
    const handle = await provider.launch(launchRequest('r11', { run: serverRun({ READY_AFTER_MS: '300' }) }));
    const ready = await waitUntilReady({ endpoint: handle.endpoint, path: '/health', periodMs: 100, timeoutMs: 1000, deadline: Date.now() + 60_000, isAlive: aliveCheck('r11') });
    expect(ready.notReadyAtMs).toBeDefined();
    expect(ready.readyAtMs).toBeGreaterThan(ready.notReadyAtMs ?? Infinity);
  });
});
