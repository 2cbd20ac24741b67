/**
 * The worker's subnets and their AZs (DescribeSubnets, once per provider: a subnet never
 * changes AZ). An unknown subnet is the worker's configuration error, said with its id.
 */
import { DescribeSubnetsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { ProviderError } from '../types';
import { providerErrorFrom } from './errors';
import type { Subnet } from './placement';

export class SubnetDirectory {
  private known?: Promise<Subnet[]>;

  constructor(
    private readonly ec2: EC2Client,
    private readonly subnetIds: string[],
  ) {}

  /** The subnets in the configured order, each with its AZ. */
  subnets(): Promise<Subnet[]> {
    this.known ??= this.load().catch((err) => {
      this.known = undefined; // a failure is not cached: the next launch asks again
      throw err;
    });
    return this.known;
  }

  private async load(): Promise<Subnet[]> {
    let found;
    try {
      found = await this.ec2.send(new DescribeSubnetsCommand({ SubnetIds: this.subnetIds }));
    } catch (err) {
      throw providerErrorFrom(err, `DescribeSubnets for the worker's subnets (${this.subnetIds.join(', ')})`);
    }
    const byId = new Map((found.Subnets ?? []).map((s) => [s.SubnetId, s.AvailabilityZone]));
    return this.subnetIds.map((subnetId) => {
      const az = byId.get(subnetId);
      if (!az) throw new ProviderError(`subnet ${subnetId} (subnets in the worker's AWS config) was not found in the worker's region`, 'InvalidRequest', false);
      return { subnetId, az };
    });
  }
}
