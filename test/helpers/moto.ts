/**
 * moto's EC2 API as a real server on loopback (`.venv/bin/moto_server`, installed by
 * scripts/setup.js from requirements-dev.txt), for tests of AWS code through the real SDK.
 * Each call starts a server of its own (its own state), on a port of this suite's block.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import type { Socket } from 'node:net';
import path from 'node:path';
import { CreateSubnetCommand, DescribeVpcsCommand, EC2Client, type EC2ClientConfig } from '@aws-sdk/client-ec2';
import { freePort } from './ports';
import { waitUntil } from './wait';

const ROOT = path.resolve(__dirname, '..', '..');
export const MOTO_SERVER = path.join(ROOT, '.venv', 'bin', 'moto_server');
/** moto accepts any credentials; real-looking dummies keep the SDK's credential chain from looking elsewhere. */
export const DUMMY_CREDENTIALS = { accessKeyId: 'testing', secretAccessKey: 'testing' };
export const REGION = 'us-east-1';

export interface MotoOptions {
  /**
   * Extra environment of the moto_server process, e.g. `{MOTO_ENABLE_AMI_VALIDATION: '1'}` or
   * `{MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION: '1'}` (any non-empty value turns them on).
   */
  env?: Record<string, string>;
  /** moto's request log goes here (default: a temp file, kept for a failing test to read). */
  logFile?: string;
}

export interface Moto {
  /** `http://127.0.0.1:<port>`, for the SDK's `endpoint` or AWS_ENDPOINT_URL_EC2. */
  endpoint: string;
  port: number;
  logFile: string;
  /** An EC2 client on this server (dummy credentials, us-east-1 unless overridden). */
  ec2(config?: EC2ClientConfig): EC2Client;
  /** Stops the server (its process group): SIGTERM, SIGKILL after 5 s. Idempotent. */
  stop(): Promise<void>;
}

/** An EC2 client against `endpoint` with dummy credentials. */
export function ec2Client(endpoint: string, config: EC2ClientConfig = {}): EC2Client {
  return new EC2Client({ region: REGION, endpoint, credentials: DUMMY_CREDENTIALS, ...config });
}

export async function startMoto(opts: MotoOptions = {}): Promise<Moto> {
  if (!fs.existsSync(MOTO_SERVER)) throw new Error(`${MOTO_SERVER} is missing: run \`node scripts/setup.js\``);
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const logFile = opts.logFile ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'moto-')), 'moto.log');
  const log = fs.openSync(logFile, 'a');
  // Its own process group (detached), so stop() ends moto and anything it forked, and only that.
  // The shell around it ends moto when our end of its stdin closes, i.e. when this process dies
  // in any way (even SIGKILL, where no exit handler runs): no moto outlives its test.
  // (A background job's stdin is /dev/null unless redirected: hence the copy on fd 3.)
  const watchdog = 'exec 3<&0; "$0" -H 127.0.0.1 -p "$1" & m=$!; (read _ <&3; kill $m) & wait $m';
  const child = spawn('/bin/sh', ['-c', watchdog, MOTO_SERVER, String(port)], {
    detached: true,
    stdio: ['pipe', log, log],
    env: { ...process.env, ...opts.env },
  });
  fs.closeSync(log);
  child.unref();
  (child.stdin as Socket).unref(); // the pipe alone must not keep the test process alive
  let exited = false;
  const exit = new Promise<void>((resolve) => child.once('exit', () => resolve(void (exited = true))));
  const pgid = child.pid!;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pgid, sig);
    } catch {
      // the group is gone already
    }
  };
  const onExit = () => signal('SIGKILL');
  process.once('exit', onExit);
  const stop = async () => {
    process.removeListener('exit', onExit);
    if (!exited) {
      signal('SIGTERM');
      const killer = setTimeout(() => signal('SIGKILL'), 5000);
      await exit;
      clearTimeout(killer);
    }
    signal('SIGKILL'); // the watchdog's reader, which outlives moto until its stdin closes
  };
  try {
    // Any HTTP answer means the server is listening (moto answers unknown paths too).
    await waitUntil(async () => {
      if (exited) throw new Error(`moto_server exited at start: ${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
      return fetch(`${endpoint}/moto-api/`).then(() => true, () => false);
    }, 'moto_server to answer', 60_000, 100);
  } catch (err) {
    await stop();
    throw err;
  }
  return { endpoint, port, logFile, ec2: (config) => ec2Client(endpoint, config), stop };
}

/**
 * One new subnet per AZ in the default VPC (172.31.0.0/16), each a /24 picked at random from
 * 172.31.96.0–172.31.255.0, which moto's default subnets (one /20 per AZ, 1a–1f) leave free.
 * Why: moto hands out a subnet's addresses in order, so two test runs at once on this machine
 * (two moto servers) would give their first instances the same private IP, and one host can
 * route an address to one namespace only. Random subnets make that unlikely. Returns AZ → id.
 */
export async function randomSubnets(ec2: EC2Client, azs: string[]): Promise<Record<string, string>> {
  const vpcs = await ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] }));
  const vpcId = vpcs.Vpcs?.[0]?.VpcId;
  if (!vpcId) throw new Error('moto has no default VPC');
  const thirds = new Set<number>();
  while (thirds.size < azs.length) thirds.add(96 + Math.floor(Math.random() * 160));
  const out: Record<string, string> = {};
  const picked = [...thirds];
  for (const [i, az] of azs.entries()) {
    const res = await ec2.send(new CreateSubnetCommand({ VpcId: vpcId, AvailabilityZone: az, CidrBlock: `172.31.${picked[i]}.0/24` }));
    out[az] = res.Subnet!.SubnetId!;
  }
  return out;
}
