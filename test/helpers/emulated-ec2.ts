/**
 * The whole emulated EC2 for an end-to-end test file, in one call at its top level:
 *
 *   const aws = useEmulatedEc2();
 *   test('…', async () => { new AwsProvider({ endpoint: aws.endpoint, subnets: aws.subnets, … }) … });
 *
 * beforeAll starts moto, the fault proxy in front of it and the instance runner behind it;
 * afterAll (which runs when tests fail too) closes all three, leaving no namespace, route or
 * process. The code under test talks to `endpoint` (the proxy); the runner watches moto itself.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { Ec2FaultProxy } from './ec2-fault-proxy';
import { Ec2InstanceRunner, type RunnerOptions } from './ec2-instance-runner';
import { DUMMY_CREDENTIALS, ec2Client, randomSubnets, REGION, startMoto, type Moto, type MotoOptions } from './moto';

export interface EmulatedEc2 {
  moto: Moto;
  proxy: Ec2FaultProxy;
  runner: Ec2InstanceRunner;
  /** The proxy's endpoint: what the code under test should use. */
  endpoint: string;
  /** A client on `endpoint` (faults apply) and one on moto itself (for the test's own checks). */
  ec2: EC2Client;
  motoEc2: EC2Client;
  /** AZ → a subnet of its own (see randomSubnets()). */
  subnets: Record<string, string>;
  /** The environment an SDK-using process needs to reach `endpoint` (a worker the test starts). */
  env: Record<string, string>;
}

export interface EmulatedEc2Options {
  azs?: string[];
  moto?: MotoOptions;
  runner?: Omit<RunnerOptions, 'endpoint'>;
  seed?: number;
}

export function useEmulatedEc2(opts: EmulatedEc2Options = {}): EmulatedEc2 {
  const h = {} as EmulatedEc2;
  beforeAll(async () => {
    h.moto = await startMoto(opts.moto);
    h.proxy = await Ec2FaultProxy.start({ target: h.moto.endpoint, seed: opts.seed });
    h.runner = await Ec2InstanceRunner.start({ endpoint: h.moto.endpoint, ...opts.runner });
    h.endpoint = h.proxy.endpoint;
    h.ec2 = ec2Client(h.endpoint);
    h.motoEc2 = h.moto.ec2();
    h.subnets = await randomSubnets(h.motoEc2, opts.azs ?? ['us-east-1a', 'us-east-1b']);
    h.env = { AWS_ENDPOINT_URL_EC2: h.endpoint, AWS_REGION: REGION, AWS_ACCESS_KEY_ID: DUMMY_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: DUMMY_CREDENTIALS.secretAccessKey };
  }, 120_000);
  afterAll(async () => {
    if (h.runner?.failures.length) console.log(`instance runner failures:\n${h.runner.events.join('\n')}`);
    await h.runner?.close();
    await h.proxy?.close();
    await h.moto?.stop();
  }, 120_000);
  return h;
}
