/**
 * provider: aws end to end (issue 11), with no AWS account: `rollout dev` (Temporal dev server,
 * router, worker with the AWS provider), the real CLI, load through the router, and an emulated
 * EC2 (test/helpers/emulated-ec2.ts): moto's EC2 API behind a fault proxy, and an instance
 * runner that makes every instance moto holds as running a real network namespace at its
 * private IP, running its user data. So the provider's user data really starts the example model
 * server, the readiness probe and the router reach it at 172.31.x.y:8000, and a leaked instance
 * is a leaked process.
 *
 *  a. v1 → v2 rolling on aws under load: 0 failed requests, every v1 instance terminated;
 *  b. v2 never becomes ready: `deploy --wait` exits 1, v1 serves everything, no v2 instance is
 *     left — not even one the rollout never launched (planted with v2's tags: found by tag);
 *  c. the catalog's first type is out of capacity in every AZ: the rollout completes on the
 *     next type, and v1 served at full capacity meanwhile;
 *  d. a permanent stockout: `rollout status` says what the rollout waits for, v1 serves 100%
 *     until the deadline, the rollout rolls back, and not one v1 instance was terminated;
 *  e. the worker is killed right after RunInstances took effect and restarted: exactly one
 *     instance exists for that replica;
 *  f. `rollout gc` finds and terminates a planted orphan (dry run first), of a running service
 *     and of one that has no workflow; a stray of another service carrying one of its replica
 *     ids takes nothing of the service with it;
 *  g. a serving instance terminated through the EC2 API is replaced by self-healing;
 *  h. a rollout workflow terminated from outside (the UI's Terminate): no instance of its
 *     version is left, v1 serves;
 *  j. a service whose workflow was terminated is deployed again (versions start at 1 again):
 *     the old instances, same replica ids but another spec, are replaced, not adopted;
 *  k. EC2 refuses the worker's credentials on TerminateInstances mid-rollout: the rollout ends
 *     as failed saying so, and `deploy --wait` exits 1 (it used to hang);
 *  i. bad configuration (an AMI EC2 does not know, a permission the worker lacks) fails the
 *     rollout at its first launch, not at its timeout, saying what to fix; v1 serves.
 * The tests share one stack and one emulated EC2, each on a service (and instance types) of its own.
 */
import { DescribeImagesCommand, DescribeInstancesCommand, RunInstancesCommand, TerminateInstancesCommand, type Instance } from '@aws-sdk/client-ec2';
import { Client, Connection } from '@temporalio/client';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TAGS } from '../../src/providers/aws/tags';
import { killProcess, rolloutCli, startStack, writeSpec, type RunningStack } from '../helpers/dev-stack';
import { useEmulatedEc2 } from '../helpers/emulated-ec2';
import { netnsUnsupportedSync } from '../helpers/netns';
import { startLoad } from '../helpers/load';
import { waitUntil } from '../helpers/wait';

const ROOT = path.resolve(__dirname, '..', '..');
const SERVER = path.join(ROOT, 'examples', 'model-server', 'server.js');
const noNetns = netnsUnsupportedSync();
if (noNetns) console.warn(`aws e2e: skipped: ${noNetns}`);
const suite = noNetns ? describe.skip : describe;

suite('provider aws, end to end on an emulated EC2', () => {
  const aws = useEmulatedEc2({ azs: ['us-east-1a', 'us-east-1b'] });
  let stack: RunningStack;
  let specDir: string;

  beforeAll(async () => {
    specDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rollout-aws-e2e-'));
    const images = await aws.motoEc2.send(new DescribeImagesCommand({}));
    const imageId = images.Images?.[0]?.ImageId;
    if (!imageId) throw new Error('moto lists no AMI');
    const config = path.join(specDir, 'aws.json');
    fs.writeFileSync(config, JSON.stringify({ region: 'us-east-1', subnets: Object.values(aws.subnets), image_id: imageId }));
    stack = await startStack([], {
      env: {
        ...aws.env,
        ROLLOUT_AWS_CONFIG: config,
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      },
    });
  }, 240_000);

  afterAll(async () => {
    await stack?.stop();
    expect(aws.runner?.failures ?? []).toEqual([]);
  }, 120_000);

  afterEach(() => aws.proxy.clearRules());

  interface AwsSpec {
    name: string;
    version: string;
    replicas?: number;
    instanceType?: string;
    accelerators?: string;
    imageId?: string;
    extraEnv?: Record<string, string>;
    initialDelay?: number;
    timeout?: string;
  }
  const awsSpec = (o: AwsSpec) =>
    writeSpec(
      specDir,
      `${o.name}-${o.version}.yaml`,
      [
        `name: ${o.name}`,
        `replicas: ${o.replicas ?? 2}`,
        // User data runs with cwd /: the server by its absolute path, on the instance's address.
        `run: exec node ${SERVER}`,
        'env:',
        ...Object.entries({ MODEL_VERSION: o.version, LOAD_DELAY_SECONDS: '1', HOST: '0.0.0.0', ...o.extraEnv }).map(([k, v]) => `  ${k}: "${v}"`),
        'resources:',
        '  provider: aws',
        ...(o.instanceType ? [`  instance_type: ${o.instanceType}`] : []),
        ...(o.accelerators ? [`  accelerators: "${o.accelerators}"`] : []),
        ...(o.imageId ? [`  image_id: ${o.imageId}`] : []),
        'readiness_probe:',
        '  path: /health',
        `  initial_delay_seconds: ${o.initialDelay ?? 90}`,
        '  period_seconds: 1',
        'rollout:',
        '  strategy: rolling',
        '  max_surge: 1',
        '  max_unavailable: 0',
        `  timeout: ${o.timeout ?? '5m'}`,
        '',
      ].join('\n'),
    );

  /** The service's instances as EC2 holds them (by tag), optionally of one version and in some states. */
  async function instancesOf(service: string, opts: { version?: number; states?: string[] } = {}): Promise<Instance[]> {
    const filters = [{ Name: `tag:${TAGS.service}`, Values: [service] }];
    if (opts.version !== undefined) filters.push({ Name: `tag:${TAGS.version}`, Values: [String(opts.version)] });
    if (opts.states) filters.push({ Name: 'instance-state-name', Values: opts.states });
    const out = await aws.motoEc2.send(new DescribeInstancesCommand({ Filters: filters }));
    return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  }
  const live = (service: string, version?: number) => instancesOf(service, { version, states: ['pending', 'running'] });
  const ids = (instances: Instance[]) => instances.map((i) => i.InstanceId ?? '').sort();
  const tagOf = (i: Instance, key: string) => i.Tags?.find((t) => t.Key === key)?.Value;

  /** An instance tagged for the service that no rollout launched, running a process (a real leak). */
  async function plantInstance(service: string, version: number, replicaId: string): Promise<string> {
    const out = await aws.motoEc2.send(
      new RunInstancesCommand({
        ImageId: 'ami-12345678',
        InstanceType: 'g4dn.xlarge',
        MinCount: 1,
        MaxCount: 1,
        SubnetId: Object.values(aws.subnets)[0],
        UserData: Buffer.from('#!/bin/bash\nexec sleep 3600\n').toString('base64'),
        TagSpecifications: [
          {
            ResourceType: 'instance',
            Tags: [
              { Key: TAGS.service, Value: service },
              { Key: TAGS.version, Value: String(version) },
              ...(replicaId ? [{ Key: TAGS.replica, Value: replicaId }] : []),
            ],
          },
        ],
      }),
    );
    const id = out.Instances![0].InstanceId!;
    await aws.runner.started(id);
    await waitUntil(async () => (await aws.runner.processes(id)).length > 0, `the planted instance ${id}'s process`);
    return id;
  }

  /** The runner stops a terminated instance's processes at its next look at moto. */
  const processesGone = (instanceId: string) => waitUntil(async () => (await aws.runner.processes(instanceId)).length === 0, `${instanceId}'s processes to be gone`, 30_000, 100);

  async function statusJson(service: string) {
    const r = await rolloutCli(stack, ['status', service, '--output', 'json']);
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout);
  }

  async function deployV1(name: string, spec: Partial<AwsSpec> = {}) {
    const r = await rolloutCli(stack, ['deploy', awsSpec({ name, version: 'v1', instanceType: 'g4dn.xlarge', ...spec }), '--wait']);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    const instances = await live(name, 1);
    expect(instances).toHaveLength(spec.replicas ?? 2);
    for (const i of instances) expect(i.PrivateIpAddress).toMatch(/^172\.31\./);
    return instances;
  }

  test('a. v1 → v2 rolling on aws under load: 0 failed requests, every v1 instance terminated', async () => {
    const v1 = await deployV1('roll');
    const load = startLoad(`${stack.routerUrl}/roll`, { clients: 3 });
    await load.until((r) => (r.versions.v1 ?? 0) >= 10, 'v1 answering through the router');
    const r2 = await rolloutCli(stack, ['deploy', awsSpec({ name: 'roll', version: 'v2', instanceType: 'g4dn.xlarge' }), '--wait']);
    expect({ code: r2.code, stderr: r2.stderr }).toMatchObject({ code: 0 });
    await load.until((r) => (r.versions.v2 ?? 0) >= 10, 'v2 answering through the router');
    const report = await load.stop();
    expect(report.failures).toEqual([]);
    expect(Object.keys(report.versions).sort()).toEqual(['v1', 'v2']);

    const after = await instancesOf('roll', { version: 1 });
    expect(ids(after)).toEqual(ids(v1));
    for (const i of after) expect(i.State?.Name).toBe('terminated');
    for (const i of v1) await processesGone(i.InstanceId!);
    const v2 = await live('roll', 2);
    expect(v2).toHaveLength(2);
    const status = await statusJson('roll');
    expect(status.version).toBe(2);
    expect(status.replicas.map((r: { endpoint: string }) => r.endpoint).sort()).toEqual(v2.map((i) => `http://${i.PrivateIpAddress}:8000`).sort());
  }, 300_000);

  test('b. v2 never becomes ready: deploy --wait exits 1, v1 serves everything, no v2 instance left (a planted one too)', async () => {
    const v1 = await deployV1('stuck');
    // An instance of v2 the rollout never launched: only a sweep by tag finds it.
    const planted = await plantInstance('stuck', 2, 'stuck-v2-r99');
    const load = startLoad(`${stack.routerUrl}/stuck`, { clients: 2 });
    const r2 = await rolloutCli(stack, ['deploy', awsSpec({ name: 'stuck', version: 'v2', instanceType: 'g4dn.xlarge', extraEnv: { NEVER_READY: '1' }, initialDelay: 8 }), '--wait']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/rolled back: replica stuck-v2-r\d+ failed: .*not ready/);
    const report = await load.stop();
    expect(report.failures).toEqual([]);
    expect(Object.keys(report.versions)).toEqual(['v1']);

    const status = await statusJson('stuck');
    expect(status.version).toBe(1);
    expect(status.traffic).toEqual({ '1': 100 });
    await waitUntil(async () => (await live('stuck', 2)).length === 0, 'no v2 instance pending or running', 60_000, 250);
    expect((await instancesOf('stuck', { version: 2 })).map((i) => i.InstanceId)).toContain(planted);
    await processesGone(planted);
    expect(ids(await live('stuck', 1))).toEqual(ids(v1));
  }, 300_000);

  test("c. the catalog's first type is out of capacity in every AZ: the rollout completes on the next one, v1 at full capacity meanwhile", async () => {
    await deployV1('stockout', { accelerators: 'A10G:1', instanceType: undefined });
    expect((await live('stockout', 1)).map((i) => i.InstanceType)).toEqual(['g5.xlarge', 'g5.xlarge']);
    const rule = aws.proxy.addRule({ action: 'RunInstances', instanceType: 'g5.xlarge', error: { code: 'InsufficientInstanceCapacity' } });
    const load = startLoad(`${stack.routerUrl}/stockout`, { clients: 2 });
    // Two replicas serve throughout (max_unavailable 0): v1's both until a v2 one is READY.
    // Sampled while the rollout runs.
    const short: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const s = await statusJson('stockout');
        const ready = s.replicas.filter((r: { status: string }) => r.status === 'READY');
        if (ready.length < 2) short.push(JSON.stringify(s.replicas));
      }
    })();
    const r2 = await rolloutCli(stack, ['deploy', awsSpec({ name: 'stockout', version: 'v2', accelerators: 'A10G:1' }), '--wait']);
    sampling = false;
    await sampler;
    expect({ code: r2.code, stderr: r2.stderr }).toMatchObject({ code: 0 });
    const report = await load.stop();
    expect(report.failures).toEqual([]);
    expect(short).toEqual([]);
    expect(aws.proxy.counts[rule]).toBeGreaterThanOrEqual(2); // both AZs were tried for g5.xlarge
    expect((await live('stockout', 2)).map((i) => i.InstanceType)).toEqual(['g5.2xlarge', 'g5.2xlarge']);
    expect(await live('stockout', 1)).toEqual([]);
  }, 300_000);

  test('d. a permanent stockout: status says what it waits for, v1 serves 100% until the deadline, the rollout rolls back, no v1 instance terminated', async () => {
    const v1 = await deployV1('drought');
    aws.proxy.addRule({ action: 'RunInstances', instanceType: ['g6e.xlarge', 'g6e.2xlarge', 'g6e.4xlarge'], error: { code: 'InsufficientInstanceCapacity' } });
    const load = startLoad(`${stack.routerUrl}/drought`, { clients: 2 });
    const deploy = rolloutCli(stack, ['deploy', awsSpec({ name: 'drought', version: 'v2', accelerators: 'L40S:1', timeout: '40s' }), '--wait']);
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON, read field by field
    let waiting: any[] = [];
    await waitUntil(
      async () => {
        waiting = (await statusJson('drought')).waiting ?? [];
        return waiting.some((w) => w.activity === 'startReplica');
      },
      'status to say what the rollout waits for',
      60_000,
      500,
    );
    expect(waiting[0].lastFailure).toMatch(/^drought-v2-r\d+: no g6e\.xlarge capacity in us-east-1a–b; no g6e\.2xlarge capacity in us-east-1a–b; no g6e\.4xlarge capacity in us-east-1a–b$/);
    const text = await rolloutCli(stack, ['status', 'drought']);
    expect(text.stdout).toMatch(/^waiting {3}startReplica failed .*no g6e\.xlarge capacity/m);

    const r2 = await deploy;
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/rolled back: timed out after 40s/);
    // deploy --wait said so too, as it waited.
    expect(r2.stderr).toMatch(/^\[\d\d:\d\d\] waiting: startReplica failed .*no g6e\.xlarge capacity in us-east-1a–b/m);
    const report = await load.stop();
    expect(report.failures).toEqual([]);
    expect(Object.keys(report.versions)).toEqual(['v1']);
    expect(ids(await live('drought', 1))).toEqual(ids(v1));
    expect(await instancesOf('drought', { version: 2 })).toEqual([]);
    expect((await statusJson('drought')).waiting).toEqual([]);
  }, 300_000);

  test('e. the worker is killed right after RunInstances and restarted: exactly one instance for that replica', async () => {
    const killed: number[] = [];
    aws.proxy.addRule({
      action: 'RunInstances',
      match: (p) => [...p.values()].includes('crash-v1-r1'),
      times: 1,
      drop: 'after-forward',
      afterForward: () => {
        const pid = stack.workerPid();
        killed.push(pid);
        killProcess(pid);
      },
    });
    const r = await rolloutCli(stack, ['deploy', awsSpec({ name: 'crash', version: 'v1', instanceType: 'g4dn.xlarge', replicas: 1 }), '--wait']);
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
    expect(killed).toHaveLength(1);
    await waitUntil(() => stack.workerPid() !== killed[0], 'the worker to be restarted');
    const all = await instancesOf('crash');
    expect(all.map((i) => [tagOf(i, TAGS.replica), i.State?.Name])).toEqual([['crash-v1-r1', 'running']]);
    const res = await fetch(`${stack.routerUrl}/crash/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
    expect(res.status).toBe(200);
  }, 300_000);

  test('f. rollout gc finds and terminates a planted orphan (dry run first); of a service with no workflow too', async () => {
    await deployV1('gc');
    const serving = ids(await live('gc'));
    const orphan = await plantInstance('gc', 1, 'gc-v1-r99');

    const dry = await rolloutCli(stack, ['gc', 'gc', '--dry-run', '-o', 'json']);
    expect(dry.code).toBe(0);
    const found = JSON.parse(dry.stdout);
    expect(found).toMatchObject({ service: 'gc', dryRun: true, terminated: [] });
    expect(found.strays).toEqual([{ provider: 'aws', replicaId: 'gc-v1-r99', version: 1, state: 'running', externalId: orphan }]);
    expect(ids(await live('gc'))).toEqual([...serving, orphan].sort());

    const text = await rolloutCli(stack, ['gc', 'gc']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/gc-v1-r99 +v1 +aws +running +i-/);
    expect(text.stdout).toMatch(/terminated 1 stray replica/);
    expect(ids(await live('gc'))).toEqual(serving);
    await processesGone(orphan);
    expect((await rolloutCli(stack, ['gc', 'gc'])).stdout).toMatch(/no stray replicas of gc/);

    // A stray of another service that carries one of gc's replica ids (and one with no replica
    // tag): gc of that other service terminates them, and never gc's own instance of that id.
    const thief = await plantInstance('thief', 1, 'gc-v1-r1');
    const untagged = await plantInstance('thief', 1, '');
    const t = await rolloutCli(stack, ['gc', 'thief', '-o', 'json']);
    expect(t.code).toBe(0);
    expect(JSON.parse(t.stdout).strays.map((s: { externalId: string }) => s.externalId).sort()).toEqual([thief, untagged].sort());
    expect(await live('thief')).toEqual([]);
    expect(ids(await live('gc'))).toEqual(serving);

    // No service workflow at all: every instance tagged for it is a stray.
    const ghost = await plantInstance('ghost', 3, 'ghost-v3-r1');
    const g = await rolloutCli(stack, ['gc', 'ghost', '-o', 'json']);
    expect(g.code).toBe(0);
    expect(JSON.parse(g.stdout)).toMatchObject({ service: 'ghost', dryRun: false, terminated: ['ghost-v3-r1'] });
    expect(await live('ghost')).toEqual([]);
    await processesGone(ghost);
  }, 300_000);

  test('g. a serving instance terminated through the EC2 API is replaced by self-healing', async () => {
    const before = await deployV1('heal');
    const victim = before[0];
    const victimReplica = tagOf(victim, TAGS.replica);
    await aws.motoEc2.send(new TerminateInstancesCommand({ InstanceIds: [victim.InstanceId!] }));
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the CLI's JSON, read field by field
    let status: any;
    await waitUntil(
      async () => {
        status = await statusJson('heal');
        const ready = status.replicas.filter((r: { status: string }) => r.status === 'READY');
        return ready.length === 2 && !ready.some((r: { id: string }) => r.id === victimReplica);
      },
      'a replacement READY',
      120_000,
      500,
    );
    expect(status.healing.replaced).toBeGreaterThanOrEqual(1);
    expect(status.healing.lastLost).toMatch(new RegExp(`${victimReplica}|${victim.InstanceId}`));
    const now = await live('heal');
    expect(now).toHaveLength(2);
    expect(ids(now)).not.toContain(victim.InstanceId);
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${stack.routerUrl}/heal/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
      expect(res.status).toBe(200);
    }
  }, 300_000);

  test('h. a rollout workflow terminated from outside: no instance of its version is left, v1 serves', async () => {
    const v1 = await deployV1('cut', { replicas: 1 });
    const d = await rolloutCli(stack, ['deploy', awsSpec({ name: 'cut', version: 'v2', instanceType: 'g4dn.xlarge', replicas: 1, extraEnv: { NEVER_READY: '1' } }), '-o', 'json']);
    expect(d.code).toBe(0);
    const { rolloutWorkflowId } = JSON.parse(d.stdout);
    await waitUntil(async () => (await live('cut', 2)).length === 1, 'a v2 instance running', 60_000, 250);
    const connection = await Connection.connect({ address: stack.temporalAddress });
    try {
      await new Client({ connection }).workflow.getHandle(rolloutWorkflowId).terminate('by hand, from the test');
    } finally {
      await connection.close();
    }
    await waitUntil(async () => (await statusJson('cut')).lastRollout?.outcome === 'failed', 'the service to record the failed rollout', 60_000, 250);
    await waitUntil(async () => (await live('cut', 2)).length === 0, 'no v2 instance pending or running', 60_000, 250);
    expect(ids(await live('cut', 1))).toEqual(ids(v1));
    const res = await fetch(`${stack.routerUrl}/cut/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
    expect({ status: res.status, version: res.headers.get('x-model-version') }).toEqual({ status: 200, version: 'v1' });
  }, 300_000);

  test.each([
    ['InvalidAMIID.NotFound', "The image id '[ami-0badbad0]' does not exist", /InvalidAMIID\.NotFound.*check resources\.image_id/],
    ['UnauthorizedOperation', 'You are not authorized to perform this operation.', /UnauthorizedOperation.*lacks a permission: see deploy\/aws\/iam-policy\.json/],
  ])('i. bad configuration (%s) fails the rollout at its first launch, saying what to fix; v1 serves', async (code, message, said) => {
    const name = code === 'UnauthorizedOperation' ? 'noperm' : 'badami';
    const v1 = await deployV1(name);
    const rule = aws.proxy.addRule({ action: 'RunInstances', match: (p) => p.get('ImageId') === 'ami-0badbad0', error: { code, message } });
    const r2 = await rolloutCli(stack, ['deploy', awsSpec({ name, version: 'v2', instanceType: 'g4dn.xlarge', imageId: 'ami-0badbad0', timeout: '30m' }), '--wait']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(said);
    // Not retried: one call (the SDK does not retry a 4xx either), whatever the 30-minute timeout.
    expect(aws.proxy.counts[rule]).toBe(1);
    expect(ids(await live(name, 1))).toEqual(ids(v1));
    expect(await instancesOf(name, { version: 2 })).toEqual([]);
    expect((await statusJson(name)).traffic).toEqual({ '1': 100 });
  }, 300_000);

  test('j. a service whose workflow was terminated, deployed again: the old instances (same ids, another spec) are replaced, not adopted', async () => {
    const before = await deployV1('reborn', { replicas: 1, extraEnv: { MODEL_NAME: 'old' } });
    // First deploy of a service nobody has yet, planned with Temporal up: a first deploy.
    const plan = await rolloutCli(stack, ['plan', awsSpec({ name: 'newcomer', version: 'v1', instanceType: 'g4dn.xlarge' }), '-o', 'json']);
    expect(JSON.parse(plan.stdout)).toMatchObject({ fromVersion: 0, toVersion: 1 });
    const connection = await Connection.connect({ address: stack.temporalAddress });
    try {
      await new Client({ connection }).workflow.getHandle('service-reborn').terminate('by hand, from the test');
    } finally {
      await connection.close();
    }
    const again = await rolloutCli(stack, ['deploy', awsSpec({ name: 'reborn', version: 'v1', instanceType: 'g4dn.xlarge', replicas: 1, extraEnv: { MODEL_NAME: 'new' } }), '--wait']);
    expect({ code: again.code, stderr: again.stderr }).toMatchObject({ code: 0 });
    const now = await live('reborn');
    expect(now).toHaveLength(1);
    expect(ids(now)).not.toEqual(ids(before));
    await processesGone(before[0].InstanceId!);
    const res = await fetch(`${stack.routerUrl}/reborn/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', max_tokens: 2 }) });
    const body = (await res.json()) as { model?: string };
    expect({ status: res.status, model: body.model }).toEqual({ status: 200, model: 'new' });
  }, 300_000);

  test("k. EC2 refuses the worker's credentials on TerminateInstances mid-rollout: the rollout fails saying so, deploy --wait exits 1", async () => {
    await deployV1('noterm', { replicas: 1 });
    aws.proxy.addRule({ action: 'TerminateInstances', error: { code: 'AuthFailure', message: 'AWS was not able to validate the provided access credentials' } });
    const r2 = await rolloutCli(stack, ['deploy', awsSpec({ name: 'noterm', version: 'v2', instanceType: 'g4dn.xlarge', replicas: 1 }), '--wait'], 180_000);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/✘ noterm v2 failed: .*AuthFailure.*credentials were refused/);
    const s = await statusJson('noterm');
    expect(s.lastRollout).toMatchObject({ version: 2, outcome: 'failed', reason: expect.stringMatching(/AuthFailure/) });
    aws.proxy.clearRules();
    // With the credentials good again, gc (and the service) can clean up what the failed rollout left.
  }, 300_000);
});
