/**
 * The emulated EC2 that the AWS provider's end-to-end tests run against: moto's API, an
 * instance runner that makes moto's instances real processes in network namespaces, and a
 * proxy that answers chosen calls with EC2's capacity and throttling errors.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DescribeInstancesCommand, RunInstancesCommand, TerminateInstancesCommand, type EC2Client, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { ec2Client, randomSubnets, startMoto, type Moto } from '../helpers/moto';
import { Ec2FaultProxy } from '../helpers/ec2-fault-proxy';
import { Ec2InstanceRunner } from '../helpers/ec2-instance-runner';
import { cleanStale, processStartTime, writeState } from '../helpers/ec2-runner-state';
import { ip, namespaceExists, netnsUnsupportedSync, nsPids } from '../helpers/netns';
import { waitUntil } from '../helpers/wait';

const SERVER = path.resolve(__dirname, '../../examples/model-server/server.js');
const AZS = ['us-east-1a', 'us-east-1b'];
const noNetns = netnsUnsupportedSync();
if (noNetns) console.warn(`aws-harness: skipping the instance runner tests: ${noNetns}`);
const withNetns = noNetns ? describe.skip : describe;

let moto: Moto;
let ec2: EC2Client;
let subnets: Record<string, string>;

const b64 = (s: string) => Buffer.from(s).toString('base64');
const launch = async (over: Partial<RunInstancesCommandInput> = {}, client = ec2) => {
  const res = await client.send(new RunInstancesCommand({ ImageId: 'ami-12345678', InstanceType: 'g5.xlarge', MinCount: 1, MaxCount: 1, SubnetId: subnets['us-east-1a'], ...over }));
  return res.Instances![0];
};
const terminate = (id: string) => ec2.send(new TerminateInstancesCommand({ InstanceIds: [id] }));
/** A process that exists and is not a zombie (a zombie has died; only its parent has not reaped it yet). */
const alive = (pid: number) => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
};

/** How a TCP connect to `host:port` ends: the error code, or 'connected', or 'timeout' (after 5 s), and how long it took. */
function probe(host: string, port: number): Promise<{ outcome: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (outcome: string) => (s.destroy(), resolve({ outcome, ms: Date.now() - t0 }));
    s.setTimeout(5000, () => done('timeout'));
    s.once('connect', () => done('connected'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

async function health(base: string): Promise<number | string> {
  return fetch(`${base}/health`, { signal: AbortSignal.timeout(5000) }).then((r) => r.status, (e: Error & { cause?: { code?: string } }) => e.cause?.code ?? e.message);
}

/** User data of a replica: the example model server on 0.0.0.0:8080 of the instance's namespace. */
const serverScript = (version: string, background = false) =>
  `#!/bin/bash\nexport PORT=8080 HOST=0.0.0.0 MODEL_VERSION=${version}\n${background ? `node ${SERVER} &\necho started in the background` : `exec node ${SERVER}`}\n`;

beforeAll(async () => {
  moto = await startMoto();
  ec2 = moto.ec2();
  subnets = await randomSubnets(ec2, AZS);
}, 90_000);

afterAll(async () => {
  await moto?.stop();
});

withNetns('the instance runner', () => {
  let runner: Ec2InstanceRunner;

  beforeAll(async () => {
    runner = await Ec2InstanceRunner.start({ endpoint: moto.endpoint });
  }, 60_000);

  afterAll(async () => {
    if (runner?.failures.length) console.log(runner.events.join('\n'));
    await runner?.close();
  }, 60_000);

  test('the VPC is routed to a local drop route before any instance runs', async () => {
    const [vpc] = runner.dropRoutes();
    expect(vpc).toMatchObject({ type: 'unreachable', cidr: '172.31.0.0/16' });
    expect(await ip(['route', 'show', 'type', 'unreachable', '172.31.0.0/16', 'metric', String(vpc.metric)])).toContain('172.31.0.0/16');
  });

  test('a launched instance runs its user data in its own namespace, reachable at privateIp:port; terminated, it is gone and its address fails at once', async () => {
    const inst = await launch({ UserData: b64(serverScript('v7')), TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'replica', Value: 'r1' }] }] });
    const id = inst.InstanceId!;
    const privateIp = inst.PrivateIpAddress!;
    expect(privateIp).toMatch(/^172\.31\./);
    const running = await runner.started(id);
    expect(running).toMatchObject({ privateIp, phase: 'up' });
    const base = `http://${privateIp}:8080`;
    await waitUntil(async () => (await health(base)) === 200, `GET ${base}/health`, 60_000, 100);
    expect(await (await fetch(`${base}/health`)).json()).toMatchObject({ model_version: 'v7' });
    expect(await ip(['route', 'get', privateIp])).toContain(`dev grh-`);
    // Nothing inside can leave: its only routes are its own address and the way back to the host.
    expect(await ip(['-n', running.namespace, 'route', 'show'])).not.toContain('default');
    const pids = await runner.processes(id);
    expect(pids.length).toBeGreaterThan(0);
    expect(await runner.live()).toContain(id);

    await terminate(id);
    await waitUntil(async () => !namespaceExists(running.namespace) && !(await runner.live()).includes(id), 'the terminated instance to be torn down', 30_000, 50);
    expect(pids.filter(alive)).toEqual([]);
    expect(await ip(['route', 'show', `${privateIp}/32`])).toBe('');
    const after = await probe(privateIp, 8080);
    expect(after.outcome).toBe('EHOSTUNREACH');
    expect(after.ms).toBeLessThan(1000);
    expect(runner.failures).toEqual([]);
  }, 120_000);

  test('user data may background the server and exit; crash() kills it behind EC2\'s back, the instance stays running', async () => {
    const inst = await launch({ SubnetId: subnets['us-east-1b'], UserData: b64(serverScript('v8', true)) });
    const id = inst.InstanceId!;
    const base = `http://${inst.PrivateIpAddress}:8080`;
    await runner.started(id);
    await waitUntil(async () => (await health(base)) === 200 && runner.instance(id)?.userDataExit === 0, 'the backgrounded server', 60_000, 100);
    expect(runner.log(id)).toContain('started in the background');

    await runner.crash(id);
    expect(await runner.processes(id)).toEqual([]);
    expect(await runner.live()).not.toContain(id);
    // The address is still routed to the live namespace: refused, not unreachable.
    expect((await probe(inst.PrivateIpAddress!, 8080)).outcome).toBe('ECONNREFUSED');
    const described = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));
    expect(described.Reservations![0].Instances![0].State!.Name).toBe('running');
    await terminate(id);
    await waitUntil(() => runner.instance(id) === undefined, 'the crashed instance to be torn down', 30_000, 50);
  }, 120_000);

  test('an instance launched without a subnet (moto: a random 10.x address) is refused, not routed', async () => {
    const inst = await launch({ SubnetId: undefined, Placement: { AvailabilityZone: 'us-east-1a' }, UserData: b64('#!/bin/bash\nsleep 600\n') });
    await waitUntil(() => runner.failures.some((f) => f.instanceId === inst.InstanceId), 'the runner to refuse it', 30_000, 50);
    expect(runner.instance(inst.InstanceId!)).toBeUndefined();
    // Its address is dropped all the same: a probe of it never leaves the machine.
    expect(await ip(['route', 'show', 'type', 'unreachable', `${inst.PrivateIpAddress}/32`])).toMatch(/metric/);
    expect((await probe(inst.PrivateIpAddress!, 8080)).outcome).toBe('EHOSTUNREACH');
    runner.failures.length = 0;
    await terminate(inst.InstanceId!);
  }, 60_000);

  test('close() leaves no namespace, no route and no process, even with a server that ignores SIGTERM', async () => {
    const stubborn = `#!/bin/bash\ntrap '' TERM\nexport PORT=8080 HOST=0.0.0.0\nnode ${SERVER} &\nwait\n`;
    const a = await launch({ UserData: b64(stubborn) });
    const b = await launch({ SubnetId: subnets['us-east-1b'], UserData: b64(serverScript('v9')) });
    for (const i of [a, b]) {
      await runner.started(i.InstanceId!);
      await waitUntil(async () => (await health(`http://${i.PrivateIpAddress}:8080`)) === 200, 'the servers', 60_000, 100);
    }
    const namespaces = runner.instances().map((i) => i.namespace);
    const pids = (await Promise.all(namespaces.map(nsPids))).flat();
    expect(pids.length).toBeGreaterThanOrEqual(2);
    const metric = String(runner.dropRoutes()[0].metric);
    // One instance going leaves the others' shared host link address and routes alone.
    await terminate(b.InstanceId!);
    await waitUntil(() => runner.instance(b.InstanceId!) === undefined, 'b to be torn down', 30_000, 50);
    expect(await health(`http://${a.PrivateIpAddress}:8080`)).toBe(200);

    await runner.close();
    expect(namespaces.filter(namespaceExists)).toEqual([]);
    expect(pids.filter(alive)).toEqual([]);
    expect(await ip(['route', 'show', 'type', 'unreachable', '172.31.0.0/16', 'metric', metric])).toBe('');
    for (const i of [a, b]) expect(await ip(['route', 'show', `${i.PrivateIpAddress}/32`])).toBe('');
    expect(await ip(['link', 'show', 'type', 'veth'])).not.toMatch(new RegExp(namespaces.map((n) => `grh-${n.slice(3)}`).join('|')));
    expect(runner.failures).toEqual([]);
  }, 180_000);

  test('closeSync() (what the exit handler runs) leaves nothing either; a second runner boots what is still running', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-runner-state-'));
    const second = await Ec2InstanceRunner.start({ endpoint: moto.endpoint, stateDir });
    const left = (await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'instance-state-name', Values: ['running'] }] }))).Reservations!.flatMap((r) => r.Instances!);
    expect(left.length).toBeGreaterThan(0);
    for (const i of left) await second.started(i.InstanceId!);
    const namespaces = second.instances().map((i) => i.namespace);
    const pids = (await Promise.all(namespaces.map(nsPids))).flat();
    expect(fs.readdirSync(stateDir)).toHaveLength(1);
    const [vpc] = second.dropRoutes();
    second.closeSync();
    expect(namespaces.filter(namespaceExists)).toEqual([]);
    await waitUntil(() => pids.filter(alive).length === 0, 'the killed processes to be reaped', 10_000, 20);
    expect(await ip(['route', 'show', 'type', 'unreachable', vpc.cidr, 'metric', String(vpc.metric)])).toBe('');
    expect(fs.readdirSync(stateDir)).toEqual([]);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: left.map((i) => i.InstanceId!) }));
  }, 120_000);

  test('what a dead run left is removed; namespaces no state file records are left alone', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-runner-state-'));
    const ours = { ns: 'gr-5ta1e001', hostVeth: 'grh-5ta1e001', nsVeth: 'grn-5ta1e001', ip: '172.31.250.250' };
    await ip(['netns', 'add', ours.ns]);
    await ip(['netns', 'add', 'gr-f0re1g00']);
    try {
      // A pid that no process has now: pid 1's with a start time that is not pid 1's.
      writeState(path.join(dir, 'dead.json'), { pid: 1, startTime: `${processStartTime(1)}-not`, routeType: 'unreachable', metric: 123_456_789, dropCidrs: [], instances: { 'i-dead': ours } });
      expect(await cleanStale(dir)).toEqual([ours.ns]);
      expect(namespaceExists(ours.ns)).toBe(false);
      expect(namespaceExists('gr-f0re1g00')).toBe(true);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      await ip(['netns', 'del', 'gr-f0re1g00']).catch(() => undefined);
      await ip(['netns', 'del', ours.ns]).catch(() => undefined);
    }
  });
});

describe('the EC2 fault proxy', () => {
  let proxy: Ec2FaultProxy;
  /** Through the proxy, one attempt: what the code under test gets, unretried. */
  let once: EC2Client;

  beforeAll(async () => {
    proxy = await Ec2FaultProxy.start({ target: moto.endpoint, seed: 42 });
    once = ec2Client(proxy.endpoint, { maxAttempts: 1 });
  });

  afterAll(async () => {
    await proxy?.close();
  });

  afterEach(() => proxy.clearRules());

  test('InsufficientInstanceCapacity for one type in one AZ, as the SDK parses it; other types and AZs pass; the stockout ends', async () => {
    const rule = proxy.addRule({ action: 'RunInstances', instanceType: 'p4d.24xlarge', availabilityZone: 'us-east-1a', error: { code: 'InsufficientInstanceCapacity' } });
    const p4d = { InstanceType: 'p4d.24xlarge' } as const;
    const err = await launch(p4d, once).then(() => undefined, (e: unknown) => e as Error & { $metadata: { httpStatusCode?: number }; $fault: string });
    expect(err?.name).toBe('InsufficientInstanceCapacity');
    expect(err?.$metadata.httpStatusCode).toBe(500);
    expect(err?.$fault).toBe('server');
    expect((err?.$metadata as { requestId?: string }).requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(err?.message).toContain('p4d.24xlarge capacity in the Availability Zone you requested (us-east-1a)');
    // By Placement too, with no subnet in the call.
    await expect(launch({ ...p4d, SubnetId: undefined, Placement: { AvailabilityZone: 'us-east-1a' } }, once)).rejects.toMatchObject({ name: 'InsufficientInstanceCapacity' });
    await expect(launch({ ...p4d, SubnetId: subnets['us-east-1b'] }, once)).resolves.toMatchObject({ InstanceType: 'p4d.24xlarge' });
    await expect(launch({ InstanceType: 'g5.xlarge' }, once)).resolves.toMatchObject({ InstanceType: 'g5.xlarge' });
    expect(proxy.counts[rule]).toBe(2);

    // The SDK's default (standard mode, 3 attempts) retries a 500: three calls reach EC2.
    const before = proxy.callsOf('RunInstances').length;
    const retried = await launch(p4d, ec2Client(proxy.endpoint)).catch((e: { $metadata: { attempts?: number } }) => e);
    expect(retried).toMatchObject({ name: 'InsufficientInstanceCapacity', $metadata: { attempts: 3 } });
    expect(proxy.callsOf('RunInstances').length - before).toBe(3);

    proxy.removeRule(rule);
    await expect(launch(p4d, once)).resolves.toMatchObject({ InstanceType: 'p4d.24xlarge' });
  }, 60_000);

  test('RequestLimitExceeded is a 503 that the SDK retries as throttling; a fraction of calls, the same ones for the same seed', async () => {
    proxy.addRule({ id: 'throttle-2', action: 'DescribeInstances', times: 2, error: { code: 'RequestLimitExceeded' } });
    const res = await ec2Client(proxy.endpoint).send(new DescribeInstancesCommand({}));
    expect(res.$metadata.attempts).toBe(3);
    expect(proxy.counts['throttle-2']).toBe(2);
    proxy.clearRules();

    const outcomes = async (p: Ec2FaultProxy) => {
      p.addRule({ action: 'DescribeInstances', fraction: 0.3, error: { code: 'RequestLimitExceeded' } });
      const client = ec2Client(p.endpoint, { maxAttempts: 1 });
      const out: string[] = [];
      for (let i = 0; i < 20; i++) out.push(await client.send(new DescribeInstancesCommand({})).then(() => 'ok', (e: Error & { $metadata: { httpStatusCode?: number } }) => `${e.name}/${e.$metadata.httpStatusCode}`));
      return out;
    };
    const first = await outcomes(proxy);
    const twin = await Ec2FaultProxy.start({ target: moto.endpoint, seed: 42 });
    const second = await outcomes(twin).finally(() => twin.close());
    expect(first).toEqual(second);
    expect(first.filter((o) => o === 'RequestLimitExceeded/503').length).toBeGreaterThan(0);
    expect(first.filter((o) => o === 'ok').length).toBeGreaterThan(0);
  }, 60_000);

  test('drop after forward: RunInstances takes effect at moto, the client gets a reset; the SDK retries it with the same ClientToken', async () => {
    proxy.addRule({ action: 'RunInstances', times: 1, drop: 'after-forward' });
    const tag = (value: string) => ({ TagSpecifications: [{ ResourceType: 'instance' as const, Tags: [{ Key: 'drop-test', Value: value }] }] });
    const lost = await launch(tag('once'), once).then(() => undefined, (e: Error & { code?: string }) => e);
    expect(lost).toBeInstanceOf(Error);
    const tagged = async (value: string) => (await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:drop-test', Values: [value] }] }))).Reservations!.flatMap((r) => r.Instances!);
    expect(await tagged('once')).toHaveLength(1);

    proxy.addRule({ action: 'RunInstances', times: 1, drop: 'after-forward' });
    const before = proxy.callsOf('RunInstances').length;
    await launch(tag('retried'), ec2Client(proxy.endpoint));
    const attempts = proxy.callsOf('RunInstances').slice(before);
    expect(attempts).toHaveLength(2);
    expect(attempts[0].params.get('ClientToken')).toBeTruthy();
    expect(attempts[1].params.get('ClientToken')).toBe(attempts[0].params.get('ClientToken'));
    // moto does not honour ClientToken: the retry made a second instance (real EC2 would return the first).
    expect(await tagged('retried')).toHaveLength(2);
    console.log(`drop after forward: the reset surfaced as ${lost?.name}: ${lost?.message} (code ${lost?.code})`);
  }, 60_000);
});
