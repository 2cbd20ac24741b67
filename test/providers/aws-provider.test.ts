/**
 * The AWS provider against moto's EC2 API on loopback (test/helpers/moto.ts): launch
 * (tags, user data, client token, endpoint), idempotent launch after a crash, describe's state
 * mapping, terminate of what is gone, list, and bad configuration failing fast.
 */
import {
  DescribeImagesCommand,
  DescribeInstanceAttributeCommand,
  DescribeInstancesCommand,
  DescribeSubnetsCommand,
  EC2Client,
  RunInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
} from '@aws-sdk/client-ec2';
import pino from 'pino';
import { AwsProvider } from '../../src/providers/aws';
import type { AwsWorkerConfig } from '../../src/providers/aws/config';
import { renderUserData } from '../../src/providers/aws/user-data';
import { ProviderError, type LaunchRequest } from '../../src/providers/types';
import type { ResourcesSpec } from '../../src/spec/types';
import { assertLoopback, awsTestEnv } from '../helpers/aws-test-env';
import { startMoto, type Moto } from '../helpers/moto';

const logger = pino({ level: 'silent' });
const AMI = 'ami-12c6146b';

let moto: Moto;
let restoreEnv: () => void;
let ec2: EC2Client;
let subnets: { id: string; az: string }[];

function request(replicaId: string, resources: Partial<ResourcesSpec> = {}, extra: Partial<LaunchRequest> = {}): LaunchRequest {
  const [service, v] = replicaId.split('-');
  return {
    replicaId,
    service,
    version: Number(v?.slice(1) || 1),
    run: 'python3 -m http.server "$PORT" --bind 0.0.0.0',
    env: { MODEL: 'llama', QUOTE: "it's $(not) run" },
    gpus: 1,
    resources: { provider: 'aws', accelerators: 'L4:1', ...resources },
    ...extra,
  };
}

function provider(config: Partial<AwsWorkerConfig> = {}): AwsProvider {
  // No endpoint here: the SDK takes it from AWS_ENDPOINT_URL, as in production.
  return new AwsProvider({ config: { region: 'us-east-1', subnets: subnets.slice(0, 3).map((s) => s.id), image_id: AMI, ...config }, logger, pollMs: 10 });
}

async function instancesOf(replicaId: string): Promise<Instance[]> {
  const out = await ec2.send(new DescribeInstancesCommand({ Filters: [{ Name: 'tag:gpu-rollout:replica', Values: [replicaId] }] }));
  return (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
}

const tag = (i: Instance, key: string) => i.Tags?.find((t) => t.Key === key)?.Value;

beforeAll(async () => {
  moto = await startMoto();
  restoreEnv = awsTestEnv(moto.endpoint);
  assertLoopback(process.env.AWS_ENDPOINT_URL);
  ec2 = new EC2Client({});
  const out = await ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: 'default-for-az', Values: ['true'] }] }));
  subnets = (out.Subnets ?? []).map((s) => ({ id: s.SubnetId ?? '', az: s.AvailabilityZone ?? '' })).sort((a, b) => a.az.localeCompare(b.az));
  expect(subnets.map((s) => s.az).slice(0, 3)).toEqual(['us-east-1a', 'us-east-1b', 'us-east-1c']);
});

afterAll(async () => {
  ec2?.destroy();
  restoreEnv?.();
  await moto?.stop();
});

describe('the SDK honours the standard endpoint variables', () => {
  test('AWS_ENDPOINT_URL: a client built without an endpoint talks to moto', async () => {
    const p = provider();
    expect(await p.region()).toBe('us-east-1');
    expect(await p.list('nobody')).toEqual([]);
    const endpoint = await ec2.config.endpoint?.();
    expect(endpoint).toBeUndefined(); // nothing configured in code: the variable decides
  });

  test('AWS_ENDPOINT_URL_EC2 alone works too', async () => {
    const restore = awsTestEnv(moto.endpoint, 'AWS_ENDPOINT_URL_EC2');
    try {
      expect(process.env.AWS_ENDPOINT_URL).toBeUndefined();
      const client = new EC2Client({});
      const out = await client.send(new DescribeSubnetsCommand({}));
      expect(out.Subnets?.length).toBeGreaterThan(0);
      client.destroy();
    } finally {
      restore();
      awsTestEnv(moto.endpoint);
    }
  });
});

describe('launch', () => {
  test('tags, user data, client token, the catalog\'s first type and the private endpoint', async () => {
    const p = provider();
    const req = request('svc-v1-r1');
    const handle = await p.launch(req);
    const [instance] = await instancesOf('svc-v1-r1');
    expect(instance.InstanceId).toBe(handle.externalId);
    expect(instance.InstanceType).toBe('g6.xlarge');
    expect(instance.Placement?.AvailabilityZone).toBe('us-east-1a');
    expect(instance.ImageId).toBe(AMI);
    expect({ service: tag(instance, 'gpu-rollout:service'), version: tag(instance, 'gpu-rollout:version'), replica: tag(instance, 'gpu-rollout:replica'), name: tag(instance, 'Name') }).toEqual({
      service: 'svc',
      version: '1',
      replica: 'svc-v1-r1',
      name: 'svc-v1-r1',
    });
    expect(instance.ClientToken).toMatch(/^svc-v1-r1-[0-9a-f]+$/);
    expect(instance.ClientToken?.length).toBeLessThanOrEqual(64);
    expect(handle).toEqual({ replicaId: 'svc-v1-r1', service: 'svc', version: 1, endpoint: `http://${instance.PrivateIpAddress}:8000`, gpuIds: [0], externalId: instance.InstanceId });
    expect(handle.endpoint).toMatch(/^http:\/\/172\.31\.\d+\.\d+:8000$/);

    const attr = await ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instance.InstanceId, Attribute: 'userData' }));
    const userData = Buffer.from(attr.UserData?.Value ?? '', 'base64').toString('utf8');
    expect(userData).toBe(renderUserData({ run: req.run, env: req.env, identity: { PORT: '8000', REPLICA_ID: 'svc-v1-r1', SERVICE_NAME: 'svc', SERVICE_VERSION: '1' } }));
    expect(userData).toContain(`export QUOTE='it'\\''s $(not) run'`);
    expect(userData).toContain(`exec /bin/bash -c 'python3 -m http.server "$PORT" --bind 0.0.0.0'`);
  });

  test('launching the same replica twice, and again from a restarted worker, leaves one instance', async () => {
    const first = await provider().launch(request('svc-v1-r2'));
    const again = await provider().launch(request('svc-v1-r2')); // a new provider: nothing in memory, as after a crash
    const concurrent = await Promise.all([provider().launch(request('svc-v1-r2')), provider().launch(request('svc-v1-r2'))]);
    expect([again, ...concurrent].map((h) => h.externalId)).toEqual([first.externalId, first.externalId, first.externalId]);
    expect((await instancesOf('svc-v1-r2')).filter((i) => i.State?.Name !== 'terminated')).toHaveLength(1);
  });

  test('a duplicate instance for one replica (a launch race moto does not catch by token) is terminated; the oldest stays', async () => {
    const p = provider();
    const handle = await p.launch(request('svc-v1-r3'));
    const [original] = await instancesOf('svc-v1-r3');
    // A second instance with the same tags, as two racing RunInstances would leave on moto.
    await new Promise((resolve) => setTimeout(resolve, 1100)); // a later LaunchTime (moto has 1 s resolution)
    await ec2.send(new RunInstancesCommand({ ImageId: AMI, InstanceType: 'g6.xlarge', MinCount: 1, MaxCount: 1, SubnetId: subnets[1].id, TagSpecifications: [{ ResourceType: 'instance', Tags: original.Tags }] }));
    expect((await instancesOf('svc-v1-r3')).filter((i) => i.State?.Name === 'running')).toHaveLength(2);
    const again = await p.launch(request('svc-v1-r3'));
    expect(again.externalId).toBe(handle.externalId);
    const states = Object.fromEntries((await instancesOf('svc-v1-r3')).map((i) => [i.InstanceId, i.State?.Name]));
    expect(Object.values(states).sort()).toEqual(['running', 'terminated']);
    expect(states[handle.externalId]).toBe('running');
  });

  test('spot, a public endpoint, a port and a root volume', async () => {
    const images = await ec2.send(new DescribeImagesCommand({ ImageIds: [AMI] }));
    const root = images.Images?.[0]?.RootDeviceName;
    const handle = await provider().launch(request('pub-v1-r1', { spot: true, public_ip: true, port: 9000, root_volume_gb: 120, accelerators: 'A10G:1' }));
    const [instance] = await instancesOf('pub-v1-r1');
    expect(instance.InstanceLifecycle).toBe('spot');
    expect(instance.InstanceType).toBe('g5.xlarge');
    expect(instance.PublicIpAddress).toBeTruthy();
    expect(handle.endpoint).toBe(`http://${instance.PublicIpAddress}:9000`);
    expect(instance.BlockDeviceMappings?.map((b) => b.DeviceName)).toContain(root);
  });

  test('an instance type named in the spec; a CPU-only replica', async () => {
    const handle = await provider().launch(request('cpu-v1-r1', { accelerators: undefined, instance_type: 't3.small' }, { gpus: 0 }));
    const [instance] = await instancesOf('cpu-v1-r1');
    expect(instance.InstanceType).toBe('t3.small');
    expect(handle.gpuIds).toEqual([]);
  });

  test('secret values are refused before anything is launched', async () => {
    const err = await provider().launch(request('sec-v1-r1', {}, { secretNames: ['HF_TOKEN'] })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({ type: 'InvalidRequest', retryable: false, message: expect.stringMatching(/env HF_TOKEN: secret references are not supported with provider aws/) });
    expect(await instancesOf('sec-v1-r1')).toEqual([]);
  });

  test('a spec region other than the worker\'s is refused, naming both', async () => {
    await expect(provider().launch(request('reg-v1-r1', { region: 'eu-west-1' }))).rejects.toMatchObject({ type: 'InvalidRequest', retryable: false, message: expect.stringMatching(/resources.region is eu-west-1, but this worker launches in us-east-1/) });
  });

  test('an accelerator count EC2 does not sell is refused with the counts there are', async () => {
    await expect(provider().launch(request('cnt-v1-r1', { accelerators: 'A10G:2' }))).rejects.toMatchObject({ type: 'InvalidRequest', message: expect.stringMatching(/exactly 2 × A10G \(there are: A10G:1, A10G:4, A10G:8\)/) });
  });

  test('a type offered in none of the worker\'s AZs is refused without a RunInstances', async () => {
    // g6e.xlarge is offered in us-east-1a–d only (moto's offerings data).
    const p = provider({ subnets: subnets.filter((s) => ['us-east-1e', 'us-east-1f'].includes(s.az)).map((s) => s.id) });
    await expect(p.launch(request('off-v1-r1', { accelerators: 'L40S:1' }))).rejects.toMatchObject({ type: 'InvalidRequest', message: expect.stringMatching(/g6e.xlarge, g6e.2xlarge, g6e.4xlarge are not offered in any AZ of the worker's subnets \(us-east-1e–f\)/) });
    expect(await instancesOf('off-v1-r1')).toEqual([]);
  });
});

describe('describe, terminate, list', () => {
  test('running → running; stopped → exited; terminated → exited; never launched → missing', async () => {
    const p = provider();
    const handle = await p.launch(request('st-v1-r1'));
    expect(await p.describe('st-v1-r1')).toEqual({ ...handle, state: 'running' });
    await ec2.send(new StopInstancesCommand({ InstanceIds: [handle.externalId] }));
    expect(await p.describe('st-v1-r1')).toMatchObject({ state: 'exited', exitInfo: expect.stringMatching(new RegExp(`^instance ${handle.externalId} stopped`)) });
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [handle.externalId] }));
    expect(await p.describe('st-v1-r1')).toMatchObject({ state: 'exited', exitInfo: expect.stringMatching(/terminated/) });
    expect(await p.describe('never-v1-r1')).toMatchObject({ state: 'missing', replicaId: 'never-v1-r1' });
  });

  test('terminate ends every instance of the replica; terminating again, or an unknown replica, succeeds', async () => {
    const p = provider();
    const handle = await p.launch(request('term-v1-r1'));
    const [original] = await instancesOf('term-v1-r1');
    await ec2.send(new RunInstancesCommand({ ImageId: AMI, InstanceType: 'g6.xlarge', MinCount: 1, MaxCount: 1, TagSpecifications: [{ ResourceType: 'instance', Tags: original.Tags }] }));
    await p.terminate('term-v1-r1');
    expect((await instancesOf('term-v1-r1')).map((i) => i.State?.Name)).toEqual(['terminated', 'terminated']);
    await p.terminate('term-v1-r1');
    await p.terminate('nobody-v1-r1');
    expect(await p.describe('term-v1-r1')).toMatchObject({ state: 'exited', externalId: expect.any(String) });
    expect(handle.externalId).toBe(original.InstanceId);
  });

  test('a replica terminated outside the provider (a reclaimed spot instance) is exited, then relaunched under a fresh token', async () => {
    const p = provider();
    const first = await p.launch(request('heal-v1-r1'));
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: [first.externalId] }));
    expect((await p.describe('heal-v1-r1')).state).toBe('exited');
    const second = await p.launch(request('heal-v1-r1'));
    expect(second.externalId).not.toBe(first.externalId);
    expect((await p.describe('heal-v1-r1')).externalId).toBe(second.externalId);
  });

  test('list(service) has one entry per live replica; listHeld one per instance, with its tags', async () => {
    const p = provider();
    await p.launch(request('lst-v1-r1'));
    await p.launch(request('lst-v2-r2'));
    await p.launch(request('lst-v2-r3'));
    await p.launch(request('other-v1-r1'));
    await p.terminate('lst-v2-r3');
    const listed = await p.list('lst');
    expect(listed.map((d) => [d.replicaId, d.version, d.state]).sort()).toEqual([
      ['lst-v1-r1', 1, 'running'],
      ['lst-v2-r2', 2, 'running'],
    ]);
    const held = await p.listHeld('lst');
    expect(held.map((t) => [t.replicaId, t.version, t.state, t.stray]).sort()).toEqual([
      ['lst-v1-r1', 1, 'running', false],
      ['lst-v2-r2', 2, 'running', false],
    ]);
    expect((await p.list()).map((d) => d.replicaId)).toEqual(expect.arrayContaining(['lst-v1-r1', 'other-v1-r1']));
  });

  /** An instance made by hand with our tags (`undefined`: the tag left out). */
  async function plant(tags: Record<string, string | undefined>): Promise<string> {
    const Tags = Object.entries(tags).flatMap(([Key, Value]) => (Value === undefined ? [] : [{ Key: `gpu-rollout:${Key}`, Value }]));
    const out = await ec2.send(new RunInstancesCommand({ ImageId: AMI, InstanceType: 'g6.xlarge', MinCount: 1, MaxCount: 1, SubnetId: subnets[0].id, TagSpecifications: [{ ResourceType: 'instance', Tags }] }));
    return out.Instances![0].InstanceId!;
  }
  const stateOf = async (id: string) => (await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }))).Reservations![0].Instances![0].State?.Name;

  test("an instance tagged for another service with a replica's id is never that replica, and gc's terminate touches only its own service", async () => {
    const p = provider();
    const victim = await p.launch(request('victim-v1-r1'));
    const thief = await plant({ service: 'thief', version: '1', replica: 'victim-v1-r1' });
    expect((await p.describe('victim-v1-r1')).externalId).toBe(victim.externalId);
    const held = await p.listHeld('thief');
    expect(held).toEqual([{ replicaId: 'victim-v1-r1', version: 1, state: 'running', externalId: thief, stray: true }]);
    await p.terminateHeld('thief', [thief, victim.externalId]);
    expect(await stateOf(thief)).toBe('terminated');
    expect(await stateOf(victim.externalId)).toBe('running');
    await p.terminate('victim-v1-r1');
    expect(await stateOf(victim.externalId)).toBe('terminated');
  });

  test('listHeld: instances without a replica tag, with junk tags or a second one of an id, are strays', async () => {
    const p = provider();
    const real = await p.launch(request('bogus-v1-r1'));
    const noReplica = await plant({ service: 'bogus', version: '1' });
    const junkVersion = await plant({ service: 'bogus', version: 'abc', replica: 'bogus-v1-r2' });
    const badId = await plant({ service: 'bogus', version: '1', replica: 'bad id with spaces' });
    const twin = await plant({ service: 'bogus', version: '9', replica: 'bogus-v1-r1' });
    const younger = await plant({ service: 'bogus', version: '1', replica: 'bogus-v1-r1' });
    const held = new Map((await p.listHeld('bogus')).map((h) => [h.externalId, h]));
    // Of two instances of one id with agreeing tags, the one describe() calls the replica stays
    // (the older; launched in the same second, the one with the lower id); the other is a stray.
    const replica = (await p.describe('bogus-v1-r1')).externalId;
    expect([real.externalId, younger]).toContain(replica);
    const duplicate = replica === real.externalId ? younger : real.externalId;
    expect(held.get(replica)).toMatchObject({ replicaId: 'bogus-v1-r1', version: 1, stray: false });
    expect(held.get(duplicate)).toMatchObject({ replicaId: 'bogus-v1-r1', version: 1, stray: true });
    expect(held.get(noReplica)).toMatchObject({ replicaId: '', version: 1, stray: true });
    expect(held.get(junkVersion)).toMatchObject({ replicaId: 'bogus-v1-r2', version: null, stray: true });
    expect(held.get(badId)).toMatchObject({ replicaId: 'bad id with spaces', stray: true });
    expect(held.get(twin)).toMatchObject({ version: 9, stray: true });
    await p.terminateHeld('bogus', [noReplica, junkVersion, badId, twin, duplicate]);
    for (const id of [noReplica, junkVersion, badId, twin, duplicate]) expect(await stateOf(id)).toBe('terminated');
    expect(await stateOf(replica)).toBe('running');
    expect((await p.describe('bogus-v1-r1')).externalId).toBe(replica);
  });

  test('an instance of the same replica id that runs another spec (an earlier life of the service) is not adopted: it is replaced', async () => {
    const p = provider();
    const old = await p.launch(request('reborn-v1-r1', {}, { env: { MODEL_VERSION: 'old' } }));
    const again = await p.launch(request('reborn-v1-r1', {}, { env: { MODEL_VERSION: 'old' } }));
    expect(again.externalId).toBe(old.externalId); // a retry of the same launch adopts it
    const fresh = await p.launch(request('reborn-v1-r1', {}, { env: { MODEL_VERSION: 'new' } }));
    expect(fresh.externalId).not.toBe(old.externalId);
    expect(await stateOf(old.externalId)).toBe('terminated');
    expect((await p.describe('reborn-v1-r1')).externalId).toBe(fresh.externalId);
  });

  test('gpus() is lenient: EC2 capacity is found at launch', async () => {
    expect(await provider().gpus()).toEqual({ total: 0, free: 0, strict: false });
  });
});

describe('bad configuration fails fast, not retryable (moto with AMI and instance type validation)', () => {
  let strict: Moto;
  let restore: () => void;
  let strictSubnets: string[];
  beforeAll(async () => {
    strict = await startMoto({ env: { MOTO_ENABLE_AMI_VALIDATION: '1', MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: '1' } });
    restore = awsTestEnv(strict.endpoint);
    const client = new EC2Client({});
    strictSubnets = ((await client.send(new DescribeSubnetsCommand({}))).Subnets ?? []).map((s) => s.SubnetId ?? '');
    client.destroy();
  });
  afterAll(async () => {
    restore?.();
    awsTestEnv(moto.endpoint);
    await strict?.stop();
  });

  test.each([
    ['an unknown AMI', { image_id: 'ami-0000000000000dead' }, {}, 'InvalidRequest', /InvalidAMIID\.NotFound.*check resources.image_id/],
    ['an unknown instance type', { accelerators: undefined, instance_type: 'g99.huge' }, {}, 'InvalidRequest', /g99.huge is offered in no AZ of us-east-1 \(check resources.instance_type/],
    ['an unknown subnet', {}, { subnets: ['subnet-0000000000000dead'] }, 'InvalidRequest', /subnet-0000000000000dead.*(InvalidSubnetID.NotFound|not found)/],
    ['an unknown security group', {}, { security_groups: ['sg-0000000000000dead'] }, 'InvalidRequest', /InvalidGroup.NotFound.*security_groups/],
  ] as [string, Partial<ResourcesSpec>, Partial<AwsWorkerConfig>, string, RegExp][])('%s', async (_name, resources, config, type, message) => {
    const p = provider({ subnets: strictSubnets.slice(0, 2), ...config });
    const err = await p.launch(request('bad-v1-r1', resources)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect({ type: (err as ProviderError).type, retryable: (err as ProviderError).retryable, message: (err as Error).message }).toEqual({ type, retryable: false, message: expect.stringMatching(message) });
  });
});
