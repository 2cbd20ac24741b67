/**
 * Wiring: ROLLOUT_AWS_CONFIG gives the worker an aws provider (a bad file stops the worker with
 * the field to fix); without it a spec on aws is refused naming what to set; the launch activity
 * hands the provider the spec's resources and the names of secret entries.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../../src/activities';
import { AwsProvider } from '../../src/providers/aws';
import type { LaunchRequest, Provider } from '../../src/providers/types';
import { RouterAdminClient } from '../../src/router/client';
import { parseSpec } from '../../src/spec/load';
import type { ServiceSpec } from '../../src/spec/types';
import { createProviders, PROVIDER_HELP, workerConfigFromEnv, WorkerStartError } from '../../src/worker';

let dir: string;
beforeAll(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aws-worker-'))));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const base = () => ({ ROUTER_ADMIN_URL: 'http://127.0.0.1:1', ROUTER_PUBLIC_URL: 'http://127.0.0.1:2', ROUTER_TOKEN: 't', ROLLOUT_STATE_DIR: path.join(dir, 'state') });
const write = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};

function awsSpec(extra = ''): ServiceSpec {
  const r = parseSpec(`name: llm\nrun: serve\nresources: {provider: aws, accelerators: "L4:1", port: 9000}\n${extra}`);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.spec;
}

describe('the worker and ROLLOUT_AWS_CONFIG', () => {
  test('a valid file: the worker has an aws provider beside local', () => {
    const config = workerConfigFromEnv({ ...base(), ROLLOUT_AWS_CONFIG: write('good.yaml', 'region: us-east-1\nsubnets: [subnet-0123456789abcdef0]\n') });
    expect(config.aws).toEqual({ region: 'us-east-1', subnets: ['subnet-0123456789abcdef0'] });
    const providers = createProviders(config);
    expect(Object.keys(providers).sort()).toEqual(['aws', 'local']);
    expect(providers.aws).toBeInstanceOf(AwsProvider);
  });

  test('a bad file stops the worker (exit 2) naming the variable, the file and each field', () => {
    const file = write('bad.yaml', 'subnets: [subnet-x]\nvpc: vpc-1\n');
    expect(() => workerConfigFromEnv({ ...base(), ROLLOUT_AWS_CONFIG: file })).toThrow(
      new WorkerStartError(`ROLLOUT_AWS_CONFIG ${file}: subnets.0: expected a subnet id like "subnet-0123456789abcdef0", got "subnet-x"; vpc: unknown field`, 'config'),
    );
    expect(() => workerConfigFromEnv({ ...base(), ROLLOUT_AWS_CONFIG: path.join(dir, 'missing.yaml') })).toThrow(/^ROLLOUT_AWS_CONFIG .*missing.yaml: cannot read it \(ENOENT\)$/);
  });

  test('unset: no aws provider, and a spec on aws is refused naming what to set', async () => {
    const config = workerConfigFromEnv(base());
    expect(config.aws).toBeUndefined();
    const activities = createActivities({ providers: createProviders(config), providerHelp: PROVIDER_HELP, router: new RouterAdminClient('http://127.0.0.1:1', 't'), routerPublicUrl: 'http://127.0.0.1:2' });
    const err = await new MockActivityEnvironment().run(activities.launchReplica, { replicaId: 'llm-v1-r1', service: 'llm', version: 1, spec: awsSpec() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'ProviderNotConfigured', nonRetryable: true, message: expect.stringMatching(/provider "aws" is not configured on this worker \(configured: local\): set ROLLOUT_AWS_CONFIG to the worker's AWS config file/) });
  });
});

describe('the launch activity on aws', () => {
  function withFake(): { requests: LaunchRequest[]; activities: ReturnType<typeof createActivities> } {
    const requests: LaunchRequest[] = [];
    const fake: Provider = {
      name: 'aws',
      launch: async (req) => {
        requests.push(req);
        return { replicaId: req.replicaId, service: req.service, version: req.version, endpoint: 'http://172.31.0.9:9000', gpuIds: [0], externalId: 'i-1' };
      },
      describe: async (replicaId) => ({ replicaId, service: '', version: 0, endpoint: '', gpuIds: [], externalId: '', state: 'missing' }),
      terminate: async () => undefined,
      list: async () => [],
      gpus: async () => ({ total: 0, free: 0, strict: false }),
    };
    return { requests, activities: createActivities({ providers: { aws: fake }, router: new RouterAdminClient('http://127.0.0.1:1', 't'), routerPublicUrl: 'http://127.0.0.1:2' }) };
  }

  test('the spec\'s resources reach the provider; no secret names', async () => {
    const { requests, activities } = withFake();
    const spec = awsSpec('env: {A: b}\n');
    const out = await new MockActivityEnvironment().run(activities.launchReplica, { replicaId: 'llm-v1-r1', service: 'llm', version: 1, spec });
    expect(out).toEqual({ replicaId: 'llm-v1-r1', endpoint: 'http://172.31.0.9:9000', gpuIds: [0] });
    expect(requests[0]).toMatchObject({ resources: spec.resources, secretNames: [], env: { A: 'b' }, gpus: 1, accelerator: 'L4' });
  });

  test('a stored spec holding a secret reference on aws (not through the schema) is flagged to the provider by name', async () => {
    const { requests, activities } = withFake();
    const spec: ServiceSpec = { ...awsSpec(), env: { HF_TOKEN: { from_env: 'GPU_ROLLOUT_TEST_TOKEN' } } };
    process.env.GPU_ROLLOUT_TEST_TOKEN = 'hush';
    try {
      await new MockActivityEnvironment().run(activities.launchReplica, { replicaId: 'llm-v1-r1', service: 'llm', version: 1, spec });
    } finally {
      delete process.env.GPU_ROLLOUT_TEST_TOKEN;
    }
    expect(requests[0].secretNames).toEqual(['HF_TOKEN']);
  });

  test('gpuCapacity on aws: GPUs do not limit launches', async () => {
    const { activities } = withFake();
    expect(await new MockActivityEnvironment().run(activities.gpuCapacity, { provider: 'aws' })).toEqual({ totalGpus: null });
  });
});
