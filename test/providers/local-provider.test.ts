/**
 * The local provider against real processes: each test gets its own state dir and every
 * replica is terminated afterwards, so no process outlives the suite.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { detectGpus } from '../../src/providers/gpu-inventory';
import { liveGroupMembers, liveness } from '../../src/providers/local/proc';
import { ProviderError, type ReplicaHandle } from '../../src/providers/types';
import { answers, captureLogs, eventually, getJson, launchRequest, ProviderSandbox, serverRun } from './replica-fixture';

interface EnvAnswer {
  pid: number;
  env: Record<string, string>;
}

let sandbox: ProviderSandbox;
beforeEach(() => {
  sandbox = new ProviderSandbox();
});
afterEach(async () => {
  await sandbox.cleanup();
});


const pidOf = (externalId: string): number => Number(externalId);

async function expectProviderError(promise: Promise<unknown>, type: string, retryable: boolean): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProviderError);
  expect((err as ProviderError).type).toBe(type);
  expect((err as ProviderError).retryable).toBe(retryable);
}

describe('LocalProvider launch', () => {
  it('starts a process on a free port that answers, with its identity in the environment', async () => {
    const provider = sandbox.provider();
    const handle = await provider.launch(launchRequest('llm-v1-r0', { env: { MODEL: 'tiny' } }));
    expect(handle).toMatchObject({ replicaId: 'llm-v1-r0', service: 'llm', version: 1, gpuIds: [] });
    expect(handle.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    await eventually(() => answers(handle.endpoint), 30_000, 'the replica to answer');
    const { env } = await getJson<EnvAnswer>(`${handle.endpoint}/env`);
    expect(env).toMatchObject({ PORT: handle.endpoint.split(':')[2], REPLICA_ID: 'llm-v1-r0', SERVICE_NAME: 'llm', SERVICE_VERSION: '1', MODEL: 'tiny' });
    expect(await provider.describe('llm-v1-r0')).toMatchObject({ state: 'running', externalId: handle.externalId });

    const record = JSON.parse(fs.readFileSync(path.join(sandbox.stateDir, 'replicas', 'llm-v1-r0.json'), 'utf8'));
    expect(record).toMatchObject({ replicaId: 'llm-v1-r0', pid: pidOf(handle.externalId), pgid: pidOf(handle.externalId) });
    expect(await provider.logTail('llm-v1-r0')).toContain('listening on');
  });

  it('is idempotent: a second launch of the same id returns the same process', async () => {
    const provider = sandbox.provider();
    const first = await provider.launch(launchRequest('r0'));
    const second = await provider.launch(launchRequest('r0'));
    expect(second).toEqual(first);
  });

  it('starts one process for concurrent launches of one id', async () => {
    const provider = sandbox.provider();
    const handles = await Promise.all([1, 2, 3].map(() => provider.launch(launchRequest('r0'))));
    expect(new Set(handles.map((h) => h.externalId)).size).toBe(1);
    expect(await provider.list()).toHaveLength(1);
  });

  it('gives concurrent replicas distinct ports', async () => {
    const provider = sandbox.provider();
    const handles = await Promise.all(['a', 'b', 'c', 'd'].map((id) => provider.launch(launchRequest(id))));
    expect(new Set(handles.map((h) => h.endpoint)).size).toBe(4);
  });

  it('refuses, without retry, an environment the kernel cannot take (spawn E2BIG)', async () => {
    // The spec refuses this long before; the provider must still not report it as retryable.
    const huge = launchRequest('big', { env: { BLOB: 'x'.repeat(1024 * 1024) } });
    await expectProviderError(sandbox.provider().launch(huge), 'InvalidRequest', false);
    expect(await sandbox.provider().describe('big')).toMatchObject({ state: 'missing' });
  });

  it("refuses a NUL byte in a value without quoting the value (it may be a secret)", async () => {
    const err = await sandbox.provider().launch(launchRequest('nul', { env: { X: 'SECRET-VALUE\0tail' } })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect((err as ProviderError).message).toMatch(/^could not start nul: .*null bytes$/);
    expect((err as ProviderError).message).not.toContain('SECRET');
    expect(await sandbox.provider().describe('nul')).toMatchObject({ state: 'missing' });
  });

  it('rejects an id that cannot be a file name as a bad request', async () => {
    await expectProviderError(sandbox.provider().launch(launchRequest('../etc/x')), 'InvalidRequest', false);
  });
});

describe('LocalProvider after a worker restart', () => {
  it('a new provider on the same state dir finds the replica, returns it on launch, and terminates it', async () => {
    const before = sandbox.provider();
    const handle = await before.launch(launchRequest('r0'));
    await eventually(() => answers(handle.endpoint));

    const after = sandbox.provider();
    expect(await after.describe('r0')).toMatchObject({ state: 'running', externalId: handle.externalId, endpoint: handle.endpoint });
    expect(await after.launch(launchRequest('r0'))).toEqual(handle);
    expect(await after.list('llm')).toHaveLength(1);
    expect(await after.list('other')).toHaveLength(0);

    await after.terminate('r0');
    expect(liveness(pidOf(handle.externalId), null)).not.toBe('alive');
    expect(await before.describe('r0')).toMatchObject({ state: 'missing' });
  });
});

describe('LocalProvider after its worker process was killed', () => {
  /** Runs the provider in a separate node process that SIGKILLs itself right after the launch. */
  function launchFromDoomedWorker(replicaId: string, run: string): Promise<ReplicaHandle> {
    const script = path.join(__dirname, 'fixtures', 'launch-and-die.js');
    return new Promise((resolve, reject) => {
      execFile(process.execPath, [script, sandbox.stateDir, replicaId, run], { cwd: process.cwd() }, (err, stdout, stderr) => {
        const line = stdout.trim();
        if (!line) return reject(new Error(`the worker printed no handle: ${err?.message ?? ''} ${stderr}`));
        resolve(JSON.parse(line) as ReplicaHandle);
      });
    });
  }

  it('leaves the replica running; a new worker finds it, launch returns it, terminate stops it', async () => {
    const handle = await launchFromDoomedWorker('r0', `${serverRun()}; true`);
    await eventually(() => answers(handle.endpoint), 30_000, 'the orphaned replica to answer');

    const provider = sandbox.provider();
    expect(await provider.describe('r0')).toMatchObject({ state: 'running', externalId: handle.externalId });
    expect(await provider.launch(launchRequest('r0'))).toEqual(handle);

    await provider.terminate('r0');
    expect(liveGroupMembers(pidOf(handle.externalId))).toEqual([]);
    expect(await answers(handle.endpoint)).toBe(false);
    expect(await provider.describe('r0')).toMatchObject({ state: 'missing' });
  });
});

describe('LocalProvider after a launch cut short between its spawn and its record', () => {
  /** The state a worker SIGKILLed right after spawning leaves: the process runs, an intent names its port, no record. */
  async function cutShort(replicaId: string): Promise<ReplicaHandle> {
    const handle = await sandbox.provider().launch(launchRequest(replicaId));
    await eventually(() => answers(handle.endpoint), 30_000, 'the replica to answer');
    const records = path.join(sandbox.stateDir, 'replicas');
    fs.rmSync(path.join(records, `${replicaId}.json`));
    const port = Number(handle.endpoint.split(':')[2]);
    fs.writeFileSync(path.join(records, `${replicaId}.launching`), JSON.stringify({ replicaId, port, gpuIds: [], createdAt: new Date().toISOString() }));
    return handle;
  }

  it('a retried launch records the process that runs instead of starting a second one', async () => {
    const handle = await cutShort('r0');
    const again = await sandbox.provider().launch(launchRequest('r0'));
    expect(again).toEqual(handle);
    expect(fs.existsSync(path.join(sandbox.stateDir, 'replicas', 'r0.launching'))).toBe(false);
    expect(await sandbox.provider().describe('r0')).toMatchObject({ state: 'running', externalId: handle.externalId });
  });

  it('terminate stops that process although it has no record', async () => {
    const handle = await cutShort('r1');
    await sandbox.provider().terminate('r1');
    expect(liveGroupMembers(pidOf(handle.externalId))).toEqual([]);
    expect(fs.existsSync(path.join(sandbox.stateDir, 'replicas', 'r1.launching'))).toBe(false);
  });

  it('an intent whose process never started is cleared and the launch starts one', async () => {
    const records = path.join(sandbox.stateDir, 'replicas');
    fs.mkdirSync(records, { recursive: true });
    fs.writeFileSync(path.join(records, 'r2.launching'), JSON.stringify({ replicaId: 'r2', port: 1, gpuIds: [], createdAt: new Date().toISOString() }));
    const handle = await sandbox.provider().launch(launchRequest('r2'));
    await eventually(() => answers(handle.endpoint), 30_000, 'the replica to answer');
    expect(fs.existsSync(path.join(records, 'r2.launching'))).toBe(false);
  });
});

describe('LocalProvider terminate', () => {
  it('stops the replica, removes its record and lock, and succeeds again when repeated', async () => {
    const provider = sandbox.provider();
    const handle = await provider.launch(launchRequest('r0'));
    await provider.terminate('r0');
    expect(await provider.describe('r0')).toMatchObject({ state: 'missing' });
    expect(await answers(handle.endpoint)).toBe(false);
    expect(fs.readdirSync(path.join(sandbox.stateDir, 'replicas'))).toEqual([]);
    await expect(provider.terminate('r0')).resolves.toBeUndefined();
  });

  it('succeeds for an id it never saw', async () => {
    await expect(sandbox.provider().terminate('never-launched')).resolves.toBeUndefined();
  });

  it('kills the whole process group: the sh wrapper and the server under it', async () => {
    const provider = sandbox.provider();
    // `; true` keeps sh alive as the server's parent instead of exec-ing it.
    const handle = await provider.launch(launchRequest('r0', { run: `${serverRun()}; true` }));
    await eventually(() => answers(handle.endpoint));
    const members = liveGroupMembers(pidOf(handle.externalId));
    expect(members.length).toBeGreaterThanOrEqual(2);

    await provider.terminate('r0');
    expect(liveGroupMembers(pidOf(handle.externalId))).toEqual([]);
    members.forEach((pid) => expect(liveness(pid, null)).not.toBe('alive'));
  });

  it('SIGKILLs a replica that ignores SIGTERM once the grace period is over', async () => {
    const provider = sandbox.provider({ terminateGraceMs: 700 });
    const handle = await provider.launch(launchRequest('r0', { run: `exec ${serverRun()}`, env: { IGNORE_SIGTERM: '1' } }));
    await eventually(() => answers(handle.endpoint));

    const started = Date.now();
    await provider.terminate('r0');
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(650); // it waited out the grace period…
    expect(took).toBeLessThan(20_000); // …and did not wait for a process that would never go
    expect(liveGroupMembers(pidOf(handle.externalId))).toEqual([]);
    expect(await provider.describe('r0')).toMatchObject({ state: 'missing' });
  });
});

describe('LocalProvider with a replica that exits', () => {
  it('describes it as exited with its exit code and last log lines, and relaunches it under the same id', async () => {
    const provider = sandbox.provider();
    const first = await provider.launch(launchRequest('r0', { run: serverRun({ EXIT_AFTER_MS: '200', EXIT_CODE: '3' }) }));
    await eventually(async () => (await provider.describe('r0')).state === 'exited', 30_000, 'the replica to exit');

    const described = await provider.describe('r0');
    expect(described.exitInfo).toContain('exit code 3');
    expect(described.exitInfo).toContain('fatal: could not load model weights');
    expect(await provider.list()).toEqual([expect.objectContaining({ replicaId: 'r0', state: 'exited' })]);

    const second = await provider.launch(launchRequest('r0'));
    expect(second.externalId).not.toBe(first.externalId);
    expect(await provider.describe('r0')).toMatchObject({ state: 'running', externalId: second.externalId });
    await eventually(() => answers(second.endpoint));
  });

  it('says the exit status is unknown to a provider that did not start it', async () => {
    const provider = sandbox.provider();
    await provider.launch(launchRequest('r0', { run: 'echo bye; exit 4' }));
    await eventually(async () => (await provider.describe('r0')).state === 'exited');
    const other = sandbox.provider();
    const described = await other.describe('r0');
    expect(described.state).toBe('exited');
    expect(described.exitInfo).toContain('unknown');
    expect(described.exitInfo).toContain('bye');
  });

  it('answers missing for an id it has no record of', async () => {
    expect(await sandbox.provider().describe('nope')).toMatchObject({ replicaId: 'nope', state: 'missing' });
  });
});

describe('LocalProvider GPU accounting', () => {
  const gpuServer = launchRequest('x', { gpus: 1 });

  it('with gpus: 2, hands out GPU 0 then 1, then reports capacity exhausted until one is freed', async () => {
    const provider = sandbox.provider({ gpus: 2 });
    const a = await provider.launch({ ...gpuServer, replicaId: 'a' });
    const b = await provider.launch({ ...gpuServer, replicaId: 'b' });
    expect([a.gpuIds, b.gpuIds]).toEqual([[0], [1]]);
    await eventually(() => answers(a.endpoint));
    await eventually(() => answers(b.endpoint));
    expect((await getJson<EnvAnswer>(`${a.endpoint}/env`)).env.CUDA_VISIBLE_DEVICES).toBe('0');
    expect((await getJson<EnvAnswer>(`${b.endpoint}/env`)).env.CUDA_VISIBLE_DEVICES).toBe('1');
    expect(await provider.gpus()).toEqual({ total: 2, free: 0, strict: true });

    await expectProviderError(provider.launch({ ...gpuServer, replicaId: 'c' }), 'CapacityError', true);
    await expectProviderError(provider.launch({ ...gpuServer, replicaId: 'd', gpus: 3 }), 'InvalidRequest', false);
    expect(await provider.describe('c')).toMatchObject({ state: 'missing' });

    await provider.terminate('a');
    expect(await provider.gpus()).toEqual({ total: 2, free: 1, strict: true });
    const c = await provider.launch({ ...gpuServer, replicaId: 'c' });
    expect(c.gpuIds).toEqual([0]);
  });

  it('hides all GPUs from a replica that holds none', async () => {
    const provider = sandbox.provider({ gpus: 2 });
    const handle = await provider.launch(launchRequest('cpu-only', { env: { CUDA_VISIBLE_DEVICES: '0,1' } }));
    await eventually(() => answers(handle.endpoint));
    expect((await getJson<EnvAnswer>(`${handle.endpoint}/env`)).env.CUDA_VISIBLE_DEVICES).toBe('');
  });

  it('gives concurrent launches different GPUs', async () => {
    const provider = sandbox.provider({ gpus: 1 });
    const results = await Promise.allSettled(['a', 'b'].map((id) => provider.launch({ ...gpuServer, replicaId: id })));
    expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
  });

  it('does not count a dead replica as holding its GPU', async () => {
    const provider = sandbox.provider({ gpus: 1 });
    await provider.launch({ ...gpuServer, replicaId: 'a', run: 'exit 1' });
    await eventually(async () => (await provider.describe('a')).state === 'exited');
    expect(await provider.gpus()).toMatchObject({ free: 1 });
    expect((await provider.launch({ ...gpuServer, replicaId: 'b' })).gpuIds).toEqual([0]);
  });

  it('with gpus: 0 configured, strictly refuses GPU requests', async () => {
    await expectProviderError(sandbox.provider({ gpus: 0 }).launch(gpuServer), 'InvalidRequest', false);
  });

  it('on a host without GPUs and no gpus option, runs GPU replicas without accelerators and warns once', async () => {
    if ((await detectGpus()).length > 0) return; // this host has GPUs: lenient mode does not apply
    const { logger, lines } = captureLogs();
    const provider = sandbox.provider({ logger });
    const a = await provider.launch({ ...gpuServer, replicaId: 'a', gpus: 4 });
    const b = await provider.launch({ ...gpuServer, replicaId: 'b', gpus: 4 });
    expect([a.gpuIds, b.gpuIds]).toEqual([[], []]);
    expect(await provider.gpus()).toEqual({ total: 0, free: 0, strict: false });
    expect(lines.filter((l) => l.includes('no GPU found: running replicas without accelerators'))).toHaveLength(1);
  });
});
