/** The GPU catalog against moto's copy of EC2's DescribeInstanceTypes (GPU name, count, memory, vCPUs) and offerings. */
import { DescribeInstanceTypeOfferingsCommand, EC2Client, paginateDescribeInstanceTypes, type InstanceTypeInfo } from '@aws-sdk/client-ec2';
import { CATALOG, catalogEntry, instanceTypesFor } from '../../src/providers/aws/catalog';
import { awsTestEnv } from '../helpers/aws-test-env';
import { startMoto, type Moto } from '../helpers/moto';

let moto: Moto;
let restoreEnv: () => void;
let ec2: EC2Client;
const described = new Map<string, InstanceTypeInfo>();

beforeAll(async () => {
  moto = await startMoto();
  restoreEnv = awsTestEnv(moto.endpoint);
  ec2 = new EC2Client({});
  const types = Object.keys(CATALOG.instance_types);
  for await (const page of paginateDescribeInstanceTypes({ client: ec2 }, { InstanceTypes: types as never[] })) {
    for (const t of page.InstanceTypes ?? []) described.set(t.InstanceType ?? '', t);
  }
});

afterAll(async () => {
  ec2?.destroy();
  restoreEnv?.();
  await moto?.stop();
});

describe('catalog', () => {
  test.each(Object.keys(CATALOG.instance_types))('%s matches DescribeInstanceTypes', (type) => {
    const entry = catalogEntry(type);
    const info = described.get(type);
    expect(info).toBeDefined();
    const gpus = info?.GpuInfo?.Gpus ?? [];
    expect(gpus).toHaveLength(1);
    expect({ accelerator: gpus[0].Name, gpus: gpus[0].Count, gpu_memory_mib: gpus[0].MemoryInfo?.SizeInMiB, vcpus: info?.VCpuInfo?.DefaultVCpus, memory_mib: info?.MemoryInfo?.SizeInMiB }).toEqual({
      accelerator: entry?.accelerator,
      gpus: entry?.gpus,
      gpu_memory_mib: entry?.gpu_memory_mib,
      vcpus: entry?.vcpus,
      memory_mib: entry?.memory_mib,
    });
  });

  test.each(Object.entries(CATALOG.choices))('%s: every choice has that GPU and count, cheapest first where priced', (key, types) => {
    const [name, count] = key.split(':');
    for (const t of types) expect([t, catalogEntry(t)?.accelerator, catalogEntry(t)?.gpus]).toEqual([t, name, Number(count)]);
    const prices = types.map((t) => catalogEntry(t)?.on_demand_usd_per_hour).filter((p): p is number => typeof p === 'number');
    expect(prices).toEqual([...prices].sort((a, b) => a - b));
  });

  test('every instance type is in some choice, and every price is known or explained', () => {
    const chosen = new Set(Object.values(CATALOG.choices).flat());
    for (const [type, entry] of Object.entries(CATALOG.instance_types)) {
      expect([type, chosen.has(type)]).toEqual([type, true]);
      if (entry.on_demand_usd_per_hour === null) expect([type, entry.price_note]).toEqual([type, expect.any(String)]);
      else expect(entry.on_demand_usd_per_hour).toBeGreaterThan(0);
    }
  });

  test('every choice is offered in some AZ of us-east-1', async () => {
    const types = Object.keys(CATALOG.instance_types);
    const out = await ec2.send(new DescribeInstanceTypeOfferingsCommand({ LocationType: 'availability-zone', Filters: [{ Name: 'instance-type', Values: types }] }));
    const offered = new Set<string>((out.InstanceTypeOfferings ?? []).map((o) => o.InstanceType ?? ''));
    expect(types.filter((t) => !offered.has(t))).toEqual([]);
  });

  test.each([
    ['A10G', 1, ['g5.xlarge', 'g5.2xlarge', 'g5.4xlarge', 'g5.8xlarge']],
    ['L4', 1, ['g6.xlarge', 'g6.2xlarge', 'g6.4xlarge']],
    ['l40s', 1, ['g6e.xlarge', 'g6e.2xlarge', 'g6e.4xlarge']],
    ['A100', 8, ['p4d.24xlarge']],
    ['H100', 8, ['p5.48xlarge']],
    ['H100', 1, ['p5.4xlarge']],
    ['T4', 1, ['g4dn.xlarge', 'g4dn.2xlarge', 'g4dn.4xlarge']],
    ['L4', 8, ['g6.48xlarge']],
  ])('%s:%d → %j', (name, count, types) => {
    expect(instanceTypesFor(name as string, count as number)).toEqual(types);
  });

  test.each([
    ['A10G', 2, /no EC2 instance type in the catalog has exactly 2 × A10G \(there are: A10G:1, A10G:4, A10G:8\); set resources.instance_type/],
    ['A100', 1, /exactly 1 × A100 \(there are: A100:8\)/],
    ['MI300X', 8, /no EC2 instance type with MI300X GPUs \(it knows T4, A10G, L4, L40S, A100, H100\)/],
  ])('%s:%d is refused with what there is', (name, count, message) => {
    expect(() => instanceTypesFor(name as string, count as number)).toThrow(message as RegExp);
  });
});
