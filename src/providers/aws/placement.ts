/**
 * Where to try a launch, in order, and what to say when nowhere had room. Pure (the runner
 * takes the launch call as a function).
 *
 * Order: market (spot first when asked for, then on-demand when `spot_fallback_on_demand`), then
 * instance type (the catalog's order, or the one type the spec names), then subnet (the
 * worker's order; one per AZ), skipping the AZs where DescribeInstanceTypeOfferings says the
 * type is not offered. A capacity error of the AZ (InsufficientInstanceCapacity) moves on to the
 * next subnet; one of the region (a vCPU or instance quota) skips the type's other subnets too.
 *
 *   markets [on-demand], types [g6.xlarge, g6.2xlarge], subnets 1a 1b 1c, g6.2xlarge not in 1c
 *   → g6.xlarge@1a, g6.xlarge@1b, g6.xlarge@1c, g6.2xlarge@1a, g6.2xlarge@1b
 *   all out of capacity → "no g6.xlarge capacity in us-east-1a–c; no g6.2xlarge capacity in us-east-1a–b; g6.2xlarge not offered in us-east-1c"
 */
export type Market = 'spot' | 'on-demand';

export interface Subnet {
  subnetId: string;
  az: string;
}

export interface Attempt {
  market: Market;
  /** undefined: the launch template's instance type. */
  instanceType?: string;
  subnetId: string;
  az: string;
}

export interface NotOffered {
  instanceType: string;
  azs: string[];
}

/**
 * `offered(type)`: the AZs that offer the type, or undefined when unknown (then every subnet is
 * tried). A type of undefined (the launch template's) is tried everywhere.
 */
export function placementOrder(
  markets: Market[],
  instanceTypes: (string | undefined)[],
  subnets: Subnet[],
  offered: (instanceType: string) => Set<string> | undefined,
): { attempts: Attempt[]; notOffered: NotOffered[] } {
  const attempts: Attempt[] = [];
  const notOffered: NotOffered[] = [];
  for (const instanceType of instanceTypes) {
    const azs = instanceType === undefined ? undefined : offered(instanceType);
    const skipped = azs ? subnets.filter((s) => !azs.has(s.az)).map((s) => s.az) : [];
    if (instanceType !== undefined && skipped.length) notOffered.push({ instanceType, azs: [...new Set(skipped)] });
  }
  for (const market of markets) {
    for (const instanceType of instanceTypes) {
      const azs = instanceType === undefined ? undefined : offered(instanceType);
      for (const s of subnets) if (!azs || azs.has(s.az)) attempts.push({ market, instanceType, subnetId: s.subnetId, az: s.az });
    }
  }
  return { attempts, notOffered };
}

export interface AttemptFailure {
  attempt: Attempt;
  code: string;
  scope: 'az' | 'region';
}

export type AttemptOutcome<T> = { ok: true; value: T } | { ok: false; code: string; scope: 'az' | 'region' };

/**
 * Tries `attempts` in order until one succeeds. A region-scope failure skips the rest of that
 * market and type. Errors `tryOne` throws (configuration, throttling, transient) end the run.
 */
export async function runPlacement<T>(
  attempts: Attempt[],
  tryOne: (a: Attempt) => Promise<AttemptOutcome<T>>,
): Promise<{ ok: true; value: T; attempt: Attempt; failures: AttemptFailure[] } | { ok: false; failures: AttemptFailure[] }> {
  const failures: AttemptFailure[] = [];
  const exhausted = new Set<string>();
  const key = (a: Attempt) => `${a.market}\n${a.instanceType ?? ''}`;
  for (const attempt of attempts) {
    if (exhausted.has(key(attempt))) continue;
    const outcome = await tryOne(attempt);
    if (outcome.ok) return { ok: true, value: outcome.value, attempt, failures };
    failures.push({ attempt, code: outcome.code, scope: outcome.scope });
    if (outcome.scope === 'region') exhausted.add(key(attempt));
  }
  return { ok: false, failures };
}

/**
 * AZs as a short list: `us-east-1a–c` for consecutive letters of one region, else comma-separated.
 *
 *   [us-east-1a, us-east-1b, us-east-1c] → "us-east-1a–c"
 *   [us-east-1a, us-east-1c]             → "us-east-1a, us-east-1c"
 *   [us-east-1b]                         → "us-east-1b"
 */
export function formatAzs(azs: string[]): string {
  const unique = [...new Set(azs)].sort();
  if (unique.length < 2) return unique.join('');
  const prefix = unique[0].slice(0, -1);
  const letters = unique.map((az) => az.slice(-1));
  const consecutive =
    unique.every((az) => az.slice(0, -1) === prefix && /^[a-z]$/.test(az.slice(-1))) &&
    letters.every((l, i) => i === 0 || l.charCodeAt(0) === letters[i - 1].charCodeAt(0) + 1);
  return consecutive ? `${unique[0]}–${letters[letters.length - 1]}` : unique.join(', ');
}

const WHY: Record<string, string> = {
  InstanceLimitExceeded: 'instance limit reached',
  VcpuLimitExceeded: 'vCPU quota reached',
  MaxSpotInstanceCountExceeded: 'spot instance quota reached',
  SpotMaxPriceTooLow: 'spot price above the on-demand price',
  Unsupported: 'not supported',
  InsufficientFreeAddressesInSubnet: 'no free address in the subnet',
  InsufficientHostCapacity: 'no dedicated host capacity',
};

/** What was tried and why each failed, in one line, in the order tried. */
export function describeFailures(failures: AttemptFailure[], notOffered: NotOffered[], region: string): string {
  const groups = new Map<string, { label: string; byCode: Map<string, { azs: string[]; scope: 'az' | 'region' }> }>();
  for (const f of failures) {
    const label = `${f.attempt.instanceType ?? "the launch template's instance type"}${f.attempt.market === 'spot' ? ' spot' : ''}`;
    const group = groups.get(label) ?? { label, byCode: new Map() };
    groups.set(label, group);
    const entry = group.byCode.get(f.code) ?? { azs: [], scope: f.scope };
    entry.azs.push(f.attempt.az);
    group.byCode.set(f.code, entry);
  }
  const parts: string[] = [];
  for (const { label, byCode } of groups.values()) {
    for (const [code, { azs, scope }] of byCode) {
      const where = scope === 'region' ? region : formatAzs(azs);
      parts.push(code === 'InsufficientInstanceCapacity' ? `no ${label} capacity in ${where}` : `${label}: ${WHY[code] ?? code} (${code}) in ${where}`);
    }
  }
  for (const n of notOffered) parts.push(`${n.instanceType} not offered in ${formatAzs(n.azs)}`);
  return parts.join('; ');
}
