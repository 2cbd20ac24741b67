/**
 * Which AZs offer an instance type (DescribeInstanceTypeOfferings), cached per type for an
 * hour: offerings change with new hardware, not between two launches. When the worker may not
 * ask (UnauthorizedOperation) or EC2 does not answer, offerings are unknown and every subnet is
 * tried: the launch still works, it only spends calls on AZs that cannot have the type.
 */
import { paginateDescribeInstanceTypeOfferings, type EC2Client } from '@aws-sdk/client-ec2';
import type pino from 'pino';
import { describeEc2Error } from './errors';

export const OFFERINGS_TTL_MS = 60 * 60 * 1000;

export class OfferingsCache {
  private readonly cache = new Map<string, { at: number; azs: Set<string> }>();

  constructor(
    private readonly ec2: EC2Client,
    private readonly logger: pino.Logger,
    private readonly now: () => number = Date.now,
    private readonly ttlMs = OFFERINGS_TTL_MS,
  ) {}

  /** type → the AZs offering it; a type missing from the map: unknown. */
  async offered(instanceTypes: string[]): Promise<Map<string, Set<string>>> {
    const fresh = (t: string) => {
      const hit = this.cache.get(t);
      return hit && this.now() - hit.at < this.ttlMs;
    };
    const missing = [...new Set(instanceTypes)].filter((t) => !fresh(t));
    if (missing.length) {
      try {
        const azs = new Map<string, Set<string>>(missing.map((t) => [t, new Set<string>()]));
        const pages = paginateDescribeInstanceTypeOfferings(
          { client: this.ec2 },
          { LocationType: 'availability-zone', Filters: [{ Name: 'instance-type', Values: missing }] },
        );
        for await (const page of pages) {
          for (const o of page.InstanceTypeOfferings ?? []) if (o.InstanceType && o.Location) azs.get(o.InstanceType)?.add(o.Location);
        }
        const at = this.now();
        for (const [t, set] of azs) this.cache.set(t, { at, azs: set });
      } catch (err) {
        this.logger.warn({ instanceTypes: missing, error: describeEc2Error(err) }, 'DescribeInstanceTypeOfferings failed: trying every subnet');
      }
    }
    const out = new Map<string, Set<string>>();
    for (const t of instanceTypes) {
      const hit = this.cache.get(t);
      if (hit) out.set(t, hit.azs);
    }
    return out;
  }
}
