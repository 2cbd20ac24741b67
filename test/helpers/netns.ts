/**
 * The Linux networking under the EC2 instance runner, as thin async wrappers over iproute2.
 *
 * One instance = one network namespace holding the instance's private IP on one end of a veth
 * pair. The host end has no address of the VPC: it carries a link-local address of its own
 * (HOST_LINK_IP, the same on every host end, as Calico does), and the host reaches the instance
 * through a /32 route on that device with that source. The namespace knows only lo and a
 * route back to HOST_LINK_IP: it has no default route, so nothing in it can send a packet
 * anywhere but to itself and back to the host that called it. No forwarding, no NAT.
 */
import { execFile, execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';

export const HOST_LINK_IP = '169.254.77.1';
export const NS_PREFIX = 'gr-';

export interface InstanceNet {
  ns: string;
  hostVeth: string;
  nsVeth: string;
  ip: string;
}

/** Short names from the instance id (interface names have at most 15 characters). */
export function instanceNet(instanceId: string, ip: string): InstanceNet {
  const hex = crypto.createHash('sha256').update(instanceId).digest('hex').slice(0, 8);
  return { ns: `${NS_PREFIX}${hex}`, hostVeth: `grh-${hex}`, nsVeth: `grn-${hex}`, ip };
}

/** Runs `ip` with `args` (and `input` on stdin for -batch); rejects with its stderr. */
export function ip(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', args, { timeout: 30_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve(stdout),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Why namespaces cannot be used here, or undefined when they can (root and a working `ip netns`). */
export async function netnsUnsupported(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'not root (network namespaces and routes need CAP_NET_ADMIN)';
  try {
    await ip(['netns', 'list']);
    return undefined;
  } catch (err) {
    return `no working \`ip netns\`: ${(err as Error).message}`;
  }
}

/** The same check, synchronously, for a test file to choose between describe and describe.skip. */
export function netnsUnsupportedSync(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root (network namespaces and routes need CAP_NET_ADMIN)';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return undefined;
  } catch (err) {
    return `no working \`ip netns\`: ${(err as Error).message}`;
  }
}

/** Creates the namespace, the veth pair and both routes. Undoes what it did if a step fails. */
export async function createInstanceNet(n: InstanceNet): Promise<void> {
  try {
    // addrgenmode none: no IPv6 link-local addresses, so not even neighbour discovery chatter.
    await ip(['-batch', '-'], [
      `netns add ${n.ns}`,
      `link add ${n.hostVeth} type veth peer name ${n.nsVeth} netns ${n.ns}`,
      `link set ${n.hostVeth} addrgenmode none`,
      `addr add ${HOST_LINK_IP}/32 dev ${n.hostVeth}`,
      `link set ${n.hostVeth} up`,
    ].join('\n'));
    await ip(['-n', n.ns, '-batch', '-'], [
      'link set lo up',
      `link set ${n.nsVeth} addrgenmode none`,
      `addr add ${n.ip}/32 dev ${n.nsVeth}`,
      `link set ${n.nsVeth} up`,
      `route add ${HOST_LINK_IP}/32 dev ${n.nsVeth} scope link`,
    ].join('\n'));
    // Fails with "File exists" when another runner on this machine routes the same address.
    await ip(['route', 'add', `${n.ip}/32`, 'dev', n.hostVeth, 'src', HOST_LINK_IP]);
  } catch (err) {
    await deleteInstanceNet(n);
    const taken = /File exists/.test((err as Error).message);
    // Two moto servers hand out the same addresses in the same order; the host can route each to one namespace only.
    throw taken ? new Error(`${n.ip} or ${n.ns} is taken on this host already (another runner, with a moto of its own, gave out the same address? launch into randomSubnets()): ${(err as Error).message}`) : err;
  }
}

/** Removes the /32 route, the veth pair and the namespace; each step tolerates "already gone". */
export async function deleteInstanceNet(n: InstanceNet): Promise<void> {
  // Only our route: `dev` makes the delete fail rather than remove another device's route.
  await ip(['route', 'del', `${n.ip}/32`, 'dev', n.hostVeth]).catch(() => undefined);
  await ip(['link', 'del', n.hostVeth]).catch(() => undefined);
  await ip(['netns', 'del', n.ns]).catch(() => undefined);
}

/** Every process in the namespace (whatever its process group), [] when there is no namespace. */
export async function nsPids(ns: string): Promise<number[]> {
  try {
    return (await ip(['netns', 'pids', ns])).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export const namespaceExists = (ns: string): boolean => fs.existsSync(`/run/netns/${ns}`);

export type DropRouteType = 'unreachable' | 'blackhole';

export async function addDropRoute(type: DropRouteType, cidr: string, metric: number): Promise<void> {
  await ip(['route', 'add', type, cidr, 'metric', String(metric)]);
}

export async function delDropRoute(type: DropRouteType, cidr: string, metric: number): Promise<void> {
  await ip(['route', 'del', type, cidr, 'metric', String(metric)]).catch(() => undefined);
}

interface RouteJson {
  dst: string;
  type?: string;
  dev?: string;
  gateway?: string;
}

function parseCidr(cidr: string): [string, number] {
  const [addr, len] = cidr.includes('/') ? cidr.split('/') : [cidr, '32'];
  return [addr, Number(len)];
}

export function cidrContains(cidr: string, addr: string): boolean {
  const list = new net.BlockList();
  list.addSubnet(...parseCidr(cidr), 'ipv4');
  return list.check(addr, 'ipv4');
}

const overlaps = (a: string, b: string) => cidrContains(a, parseCidr(b)[0]) || cidrContains(b, parseCidr(a)[0]);

/**
 * What on this host a drop route for `cidr` would cut off: main-table routes (other than the
 * default, other drop routes and runner devices) and DNS servers inside it. A drop route over
 * those would break the machine for everyone on it, so the runner refuses such a CIDR.
 */
export async function hostUsesOf(cidr: string): Promise<string[]> {
  const routes = JSON.parse(await ip(['-j', 'route', 'show', 'table', 'main'])) as RouteJson[];
  const uses = routes
    .filter((r) => r.dst !== 'default' && r.type !== 'blackhole' && r.type !== 'unreachable' && !r.dev?.startsWith('grh-'))
    .filter((r) => overlaps(cidr, r.dst) || (r.gateway !== undefined && cidrContains(cidr, r.gateway)))
    .map((r) => `route ${r.dst}${r.dev ? ` dev ${r.dev}` : ''}`);
  const gateways = routes.filter((r) => r.dst === 'default' && r.gateway && cidrContains(cidr, r.gateway)).map((r) => `default gateway ${r.gateway}`);
  let resolvers: string[] = [];
  try {
    resolvers = [...fs.readFileSync('/etc/resolv.conf', 'utf8').matchAll(/^nameserver\s+(\d+\.\d+\.\d+\.\d+)/gm)].map((m) => m[1]);
  } catch {
    // no resolv.conf: nothing to protect
  }
  return [...uses, ...gateways, ...resolvers.filter((r) => cidrContains(cidr, r)).map((r) => `DNS server ${r}`)];
}
