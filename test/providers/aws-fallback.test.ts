/**
 * The AWS provider's error handling, with RunInstances and friends mocked (aws-sdk-client-mock):
 * error classification, the AZ → instance type → market fallback order, throttling backoff, the
 * ClientToken sent, terminate of unknown ids. moto cannot produce these errors itself.
 */
import {
  DescribeInstancesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeSubnetsCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Instance,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import pino from 'pino';
import { AwsProvider } from '../../src/providers/aws';
import type { BackoffOptions } from '../../src/providers/aws/backoff';
import { classifyEc2Error, providerErrorFrom } from '../../src/providers/aws/errors';
import { ProviderError, type LaunchRequest } from '../../src/providers/types';
import type { ResourcesSpec } from '../../src/spec/types';

const SUBNETS = [
  { SubnetId: 'subnet-0000000000000000a', AvailabilityZone: 'us-east-1a' },
  { SubnetId: 'subnet-0000000000000000b', AvailabilityZone: 'us-east-1b' },
  { SubnetId: 'subnet-0000000000000000c', AvailabilityZone: 'us-east-1c' },
];
const az = (subnetId?: string) => SUBNETS.find((s) => s.SubnetId === subnetId)?.AvailabilityZone ?? '?';

function ec2Error(name: string, status = 400): EC2ServiceException {
  return new EC2ServiceException({ name, message: `${name} (mocked)`, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status } });
}

// A client that could only ever reach a closed loopback port, should a call miss the mock.
const client = new EC2Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' }, maxAttempts: 1 });
const ec2 = mockClient(client);

let sleeps: number[];
const backoff: BackoffOptions = { attempts: 5, baseMs: 250, capMs: 4000, random: () => 1, sleep: async (ms) => void sleeps.push(ms) };

function provider(): AwsProvider {
  return new AwsProvider({ config: { region: 'us-east-1', subnets: SUBNETS.map((s) => s.SubnetId), image_id: 'ami-0123456789abcdef0' }, ec2: client, logger: pino({ level: 'silent' }), backoff, pollMs: 1 });
}

function request(resources: Partial<ResourcesSpec> = {}): LaunchRequest {
  return { replicaId: 'llm-v2-r3', service: 'llm', version: 2, run: 'serve', env: {}, gpus: 1, resources: { provider: 'aws', accelerators: 'L4:1', ...resources } };
}

function launched(input: RunInstancesCommandInput): Instance {
  return {
    InstanceId: 'i-0123456789abcdef0',
    InstanceType: input.InstanceType,
    State: { Name: 'pending', Code: 0 },
    PrivateIpAddress: '172.31.0.10',
    Placement: { AvailabilityZone: az(input.SubnetId) },
    Tags: input.TagSpecifications?.[0]?.Tags,
    LaunchTime: new Date('2026-12-01T00:00:00Z'),
  };
}

/** RunInstances answers with `fail(input)`'s error, or launches. Returns the calls' (type, AZ, market, token). */
function runInstances(fail: (type: string, zone: string, market: string) => string | undefined) {
  const calls: { type: string; az: string; market: string; token: string }[] = [];
  ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => {
    const call = { type: String(input.InstanceType), az: az(input.SubnetId), market: input.InstanceMarketOptions?.MarketType ?? 'on-demand', token: input.ClientToken ?? '' };
    calls.push(call);
    const code = fail(call.type, call.az, call.market);
    if (code) throw ec2Error(code, code === 'InsufficientInstanceCapacity' || code === 'RequestLimitExceeded' ? 503 : 400);
    return { Instances: [launched(input)] };
  });
  return calls;
}

beforeEach(() => {
  sleeps = [];
  ec2.reset();
  ec2.on(DescribeSubnetsCommand).resolves({ Subnets: SUBNETS });
  ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  // g6.2xlarge is not offered in us-east-1c.
  ec2.on(DescribeInstanceTypeOfferingsCommand).callsFake((input: { Filters?: { Values?: string[] }[] }) => ({
    InstanceTypeOfferings: (input.Filters?.[0]?.Values ?? []).flatMap((t) =>
      SUBNETS.filter((s) => !(t === 'g6.2xlarge' && s.AvailabilityZone === 'us-east-1c')).map((s) => ({ InstanceType: t as never, Location: s.AvailabilityZone, LocationType: 'availability-zone' as const })),
    ),
  }));
});

afterAll(() => client.destroy());

describe('error classification', () => {
  test.each([
    ['InsufficientInstanceCapacity', { kind: 'capacity', scope: 'az' }],
    ['Unsupported', { kind: 'capacity', scope: 'az' }],
    ['SpotMaxPriceTooLow', { kind: 'capacity', scope: 'az' }],
    ['InstanceLimitExceeded', { kind: 'capacity', scope: 'region' }],
    ['VcpuLimitExceeded', { kind: 'capacity', scope: 'region' }],
    ['MaxSpotInstanceCountExceeded', { kind: 'capacity', scope: 'region' }],
    ['RequestLimitExceeded', { kind: 'throttled' }],
    ['InvalidAMIID.NotFound', { kind: 'config', type: 'InvalidRequest' }],
    ['InvalidAMIID.Malformed', { kind: 'config', type: 'InvalidRequest' }],
    ['InvalidInstanceType', { kind: 'config', type: 'InvalidRequest' }],
    ['UnsupportedOperation', { kind: 'config', type: 'InvalidRequest' }],
    ['InvalidParameterValue', { kind: 'config', type: 'InvalidRequest' }],
    ['InvalidSubnetID.NotFound', { kind: 'config', type: 'InvalidRequest' }],
    ['InvalidGroup.NotFound', { kind: 'config', type: 'InvalidRequest' }],
    ['UnauthorizedOperation', { kind: 'config', type: 'CredentialsError' }],
    ['AuthFailure', { kind: 'config', type: 'CredentialsError' }],
    ['InvalidClientTokenId', { kind: 'config', type: 'CredentialsError' }],
    ['CredentialsProviderError', { kind: 'config', type: 'CredentialsError' }],
    ['InvalidInstanceID.NotFound', { kind: 'notFound' }],
    ['SomethingNew', { kind: 'config', type: 'InvalidRequest' }], // an unknown 4xx: the same request fails again
  ])('%s → %j', (code, kind) => {
    expect(classifyEc2Error(ec2Error(code))).toEqual(kind);
  });

  test('5xx and no answer at all are transient', () => {
    expect(classifyEc2Error(ec2Error('InternalError', 500))).toEqual({ kind: 'transient' });
    expect(classifyEc2Error(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }))).toEqual({ kind: 'transient' });
  });

  test('the SDK\'s own "no credentials" error is a credentials error with a hint', () => {
    const err = Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
    expect(providerErrorFrom(err, 'RunInstances')).toMatchObject({ type: 'CredentialsError', retryable: false, message: expect.stringMatching(/no AWS credentials: give the worker credentials the standard AWS way/) });
  });

  test('UnauthorizedOperation points at the IAM policy', () => {
    expect(providerErrorFrom(ec2Error('UnauthorizedOperation', 403), 'RunInstances for x')).toMatchObject({ type: 'CredentialsError', retryable: false, message: expect.stringMatching(/deploy\/aws\/iam-policy.json/) });
  });
});

describe('stockout fallback', () => {
  test('next AZ, then the next catalog type; AZs that do not offer a type are skipped', async () => {
    const calls = runInstances((type, zone) => (type === 'g6.xlarge' || (type === 'g6.2xlarge' && zone === 'us-east-1a') ? 'InsufficientInstanceCapacity' : undefined));
    const handle = await provider().launch(request());
    expect(calls.map((c) => `${c.type}@${c.az}`)).toEqual(['g6.xlarge@us-east-1a', 'g6.xlarge@us-east-1b', 'g6.xlarge@us-east-1c', 'g6.2xlarge@us-east-1a', 'g6.2xlarge@us-east-1b']);
    expect(handle).toMatchObject({ endpoint: 'http://172.31.0.10:8000', externalId: 'i-0123456789abcdef0' });
  });

  test('out everywhere: a retryable CapacityError saying what was tried', async () => {
    const calls = runInstances(() => 'InsufficientInstanceCapacity');
    const err = await provider().launch(request()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({
      type: 'CapacityError',
      retryable: true,
      message: 'llm-v2-r3: no g6.xlarge capacity in us-east-1a–c; no g6.2xlarge capacity in us-east-1a–b; no g6.4xlarge capacity in us-east-1a–c; g6.2xlarge not offered in us-east-1c',
    });
    expect(calls).toHaveLength(8);
  });

  test('a quota error (VcpuLimitExceeded) skips the type\'s other AZs: they share the quota', async () => {
    const calls = runInstances((type) => (type === 'g6.xlarge' ? 'VcpuLimitExceeded' : 'InsufficientInstanceCapacity'));
    const err = await provider().launch(request()).catch((e: unknown) => e);
    expect(calls.map((c) => `${c.type}@${c.az}`)).toEqual(['g6.xlarge@us-east-1a', 'g6.2xlarge@us-east-1a', 'g6.2xlarge@us-east-1b', 'g6.4xlarge@us-east-1a', 'g6.4xlarge@us-east-1b', 'g6.4xlarge@us-east-1c']);
    expect((err as Error).message).toMatch(/^llm-v2-r3: g6.xlarge: vCPU quota reached \(VcpuLimitExceeded\) in us-east-1; no g6.2xlarge capacity/);
  });

  test('spot first across types and AZs, then on demand (spot_fallback_on_demand)', async () => {
    const calls = runInstances((_type, _zone, market) => (market === 'spot' ? 'InsufficientInstanceCapacity' : undefined));
    await provider().launch(request({ spot: true, spot_fallback_on_demand: true, instance_type: 'g6.xlarge', accelerators: undefined }));
    expect(calls.map((c) => `${c.market} ${c.type}@${c.az}`)).toEqual(['spot g6.xlarge@us-east-1a', 'spot g6.xlarge@us-east-1b', 'spot g6.xlarge@us-east-1c', 'on-demand g6.xlarge@us-east-1a']);
  });

  test('spot without fallback: only spot is tried, and the message says spot', async () => {
    runInstances(() => 'InsufficientInstanceCapacity');
    await expect(provider().launch(request({ spot: true, instance_type: 'g6.xlarge', accelerators: undefined }))).rejects.toMatchObject({ message: 'llm-v2-r3: no g6.xlarge spot capacity in us-east-1a–c' });
  });

  test('Unsupported in every AZ is not capacity that may come back: not retryable', async () => {
    runInstances(() => 'Unsupported');
    await expect(provider().launch(request({ instance_type: 'g6.xlarge', accelerators: undefined }))).rejects.toMatchObject({ type: 'InvalidRequest', retryable: false, message: expect.stringMatching(/no AZ of the worker's subnets supports this launch: g6.xlarge: not supported \(Unsupported\) in us-east-1a–c/) });
  });

  test('bad configuration stops the fallback at once, not retryable', async () => {
    const calls = runInstances(() => 'InvalidAMIID.NotFound');
    await expect(provider().launch(request())).rejects.toMatchObject({ type: 'InvalidRequest', retryable: false, message: expect.stringMatching(/^RunInstances for llm-v2-r3 \(g6.xlarge in us-east-1a\): InvalidAMIID.NotFound.*check resources.image_id/) });
    expect(calls).toHaveLength(1);
  });

  test('a 5xx is retryable (the next activity attempt looks the replica up by tag first)', async () => {
    ec2.on(RunInstancesCommand).rejects(ec2Error('InternalError', 500));
    await expect(provider().launch(request())).rejects.toMatchObject({ type: 'ProviderError', retryable: true, message: expect.stringMatching(/InternalError/) });
  });

  test('when offerings cannot be read (UnauthorizedOperation), every subnet is tried', async () => {
    ec2.on(DescribeInstanceTypeOfferingsCommand).rejects(ec2Error('UnauthorizedOperation', 403));
    const calls = runInstances((type) => (type === 'g6.xlarge' || type === 'g6.2xlarge' ? 'InsufficientInstanceCapacity' : undefined));
    await provider().launch(request());
    expect(calls.map((c) => `${c.type}@${c.az}`)).toEqual([
      'g6.xlarge@us-east-1a', 'g6.xlarge@us-east-1b', 'g6.xlarge@us-east-1c',
      'g6.2xlarge@us-east-1a', 'g6.2xlarge@us-east-1b', 'g6.2xlarge@us-east-1c',
      'g6.4xlarge@us-east-1a',
    ]);
  });
});

describe('throttling', () => {
  test('RequestLimitExceeded backs off with jitter and the same token, then succeeds', async () => {
    let n = 0;
    const calls = runInstances(() => (++n <= 2 ? 'RequestLimitExceeded' : undefined));
    await provider().launch(request());
    expect(sleeps).toEqual([250, 500]); // random() = 1: the top of each jitter window
    expect(new Set(calls.map((c) => c.token)).size).toBe(1);
    expect(calls).toHaveLength(3);
  });

  test('throttled throughout: a retryable ThrottlingError after a bounded number of tries', async () => {
    const calls = runInstances(() => 'RequestLimitExceeded');
    await expect(provider().launch(request())).rejects.toMatchObject({ type: 'ThrottlingError', retryable: true, message: expect.stringMatching(/EC2 throttled 5 calls in a row/) });
    expect(calls).toHaveLength(5);
    expect(sleeps).toEqual([250, 500, 1000, 2000]);
  });

  test('the jitter is random below the cap', async () => {
    const randoms = [0.5, 0.1, 0.9, 0.3];
    const p = new AwsProvider({ config: { region: 'us-east-1', subnets: [SUBNETS[0].SubnetId], image_id: 'ami-0123456789abcdef0' }, ec2: client, logger: pino({ level: 'silent' }), backoff: { ...backoff, random: () => randoms.shift() ?? 0 } });
    runInstances(() => 'RequestLimitExceeded');
    await expect(p.launch(request({ instance_type: 'g6.xlarge', accelerators: undefined }))).rejects.toMatchObject({ type: 'ThrottlingError' });
    expect(sleeps).toEqual([125, 50, 900, 600]);
  });

  test('throttled DescribeInstances too', async () => {
    let n = 0;
    ec2.on(DescribeInstancesCommand).callsFake(() => {
      if (++n <= 1) throw ec2Error('RequestLimitExceeded', 503);
      return { Reservations: [] };
    });
    runInstances(() => undefined);
    await provider().launch(request());
    expect(sleeps).toEqual([250]);
  });
});

describe('client token', () => {
  test('sent on every RunInstances, ≤ 64 characters, one per attempt, the same again after a crash', async () => {
    const first = runInstances((type) => (type === 'g6.xlarge' ? 'InsufficientInstanceCapacity' : undefined));
    await provider().launch(request());
    const tokens = first.map((c) => c.token);
    expect(tokens.every((t) => /^llm-v2-r3-[0-9a-f]+$/.test(t) && t.length <= 64)).toBe(true);
    expect(new Set(tokens).size).toBe(tokens.length);
    // The worker crashed before recording the instance, which the tag lookup does not see yet
    // (EC2's DescribeInstances is eventually consistent): the retry sends the same tokens, so EC2
    // answers with the first instance instead of starting another.
    const again = runInstances((type) => (type === 'g6.xlarge' ? 'InsufficientInstanceCapacity' : undefined));
    const p = new AwsProvider({ config: { region: 'us-east-1', subnets: SUBNETS.map((s) => s.SubnetId), image_id: 'ami-0123456789abcdef0' }, ec2: client, logger: pino({ level: 'silent' }), backoff });
    await p.launch(request());
    expect(again.map((c) => c.token)).toEqual(tokens);
  });

  test('EC2 answering with a terminated instance (a replica id launched again): a new token', async () => {
    const tokens: string[] = [];
    ec2.on(RunInstancesCommand).callsFake((input: RunInstancesCommandInput) => {
      tokens.push(input.ClientToken ?? '');
      return { Instances: [{ ...launched(input), ...(tokens.length === 1 ? { InstanceId: 'i-0000000000000dead', State: { Name: 'terminated' as const } } : {}) }] };
    });
    const handle = await provider().launch(request());
    expect(tokens).toHaveLength(2);
    expect(tokens[0]).not.toBe(tokens[1]);
    expect(handle.externalId).toBe('i-0123456789abcdef0');
  });
});

describe('terminate', () => {
  const tagged = (id: string, state: string): Instance => ({ InstanceId: id, State: { Name: state as never }, Tags: [{ Key: 'gpu-rollout:replica', Value: 'llm-v2-r3' }] });

  test('an id EC2 no longer knows fails the batch: the others are terminated one by one', async () => {
    let described = 0;
    ec2.on(DescribeInstancesCommand).callsFake(() => ({ Reservations: [{ Instances: ++described === 1 ? [tagged('i-gone', 'running'), tagged('i-live', 'running')] : [] }] }));
    const terminated: string[][] = [];
    ec2.on(TerminateInstancesCommand).callsFake((input: { InstanceIds?: string[] }) => {
      terminated.push(input.InstanceIds ?? []);
      if (input.InstanceIds?.includes('i-gone')) throw ec2Error('InvalidInstanceID.NotFound');
      return { TerminatingInstances: [] };
    });
    await provider().terminate('llm-v2-r3');
    expect(terminated).toEqual([['i-gone', 'i-live'], ['i-gone'], ['i-live']]);
  });

  test('waits for terminated; shutting-down is accepted once the wait is over', async () => {
    let described = 0;
    ec2.on(DescribeInstancesCommand).callsFake(() => ({ Reservations: [{ Instances: [tagged('i-1', ++described === 1 ? 'running' : 'shutting-down')] }] }));
    ec2.on(TerminateInstancesCommand).resolves({});
    const p = new AwsProvider({ config: { subnets: [SUBNETS[0].SubnetId] }, ec2: client, logger: pino({ level: 'silent' }), backoff, terminateWaitMs: 50, pollMs: 5 });
    await p.terminate('llm-v2-r3');
    expect(described).toBeGreaterThan(2);
  });

  test('nothing tagged: nothing to do', async () => {
    await provider().terminate('llm-v2-r3');
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
  });

  test('AuthFailure is a credentials error, not retryable', async () => {
    ec2.on(DescribeInstancesCommand).rejects(ec2Error('AuthFailure', 401));
    await expect(provider().terminate('llm-v2-r3')).rejects.toMatchObject({ type: 'CredentialsError', retryable: false, message: expect.stringMatching(/credentials were refused/) });
  });
});
