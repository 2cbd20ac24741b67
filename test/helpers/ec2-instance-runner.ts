/**
 * Makes moto's EC2 instances real: every instance moto holds as `running` gets a network
 * namespace with its private IP, in which its user data runs as a root shell script; when the
 * instance is stopped, terminated or gone, its processes are killed and its namespace removed.
 * So a replica the AWS provider launches answers at privateIp:port from the host, and a leaked
 * instance is a leaked process that a test can see.
 *
 * The user-data contract (what a launch's UserData must be to run here):
 *   - a script starting with `#!` (`#!/bin/bash`…), plain or as the SDK sends it (base64);
 *     anything else (cloud-config, MIME multi-part, gzip) is logged and not run;
 *   - run once per instance, at its first `running` (cloud-init's default for scripts), as root,
 *     cwd `/`, with PATH (this Node's directory first, so `node` works), HOME=/root, LANG and the
 *     runner's `env` option, nothing else of the test's environment;
 *   - it may run the server in the foreground or put it in the background and exit: every
 *     process in the namespace belongs to the instance, whatever its process group;
 *   - a server must listen on 0.0.0.0 (or the private IP) to be reached from the host; inside,
 *     only the namespace's own 127.0.0.1 and the host's link address (HOST_LINK_IP) answer:
 *     there is no default route, so no packet can leave the machine;
 *   - stdout and stderr go to `<logDir>/<instanceId>.log` (logFile()).
 *
 * Network safety: before anything can address an instance, the VPC's CIDR (172.31.0.0/16, and
 * any VPC moto reports later) is routed to a local drop route of this runner's own metric; an
 * instance's /32 route is more specific, and once it is removed the address fails at once.
 * An instance outside every dropped CIDR (moto gives an instance launched without SubnetId a
 * random 10.x address) is not started: see failures.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DescribeInstanceAttributeCommand, DescribeVpcsCommand, paginateDescribeInstances, type EC2Client } from '@aws-sdk/client-ec2';
import { ec2Client } from './moto';
import { addDropRoute, cidrContains, createInstanceNet, deleteInstanceNet, delDropRoute, hostUsesOf, instanceNet, netnsUnsupported, nsPids, type DropRouteType, type InstanceNet } from './netns';
import { cleanStale, DEFAULT_STATE_DIR, processStartTime, teardownSync, writeState, type RunnerState } from './ec2-runner-state';
import { waitUntil } from './wait';

export interface RunnerOptions {
  /** moto itself, not the fault proxy: the runner sees what EC2 really holds. */
  endpoint: string;
  region?: string;
  pollMs?: number;
  /** SIGTERM, then SIGKILL after this long, when an instance stops (EC2's shutdown). Default 2000. */
  terminateGraceMs?: number;
  /** Dropped from the start (default 172.31.0.0/16, moto's default VPC); VPCs moto reports are added as seen. */
  dropCidrs?: string[];
  /** `unreachable` (default): connect fails at once with EHOSTUNREACH; `blackhole`: at once with EINVAL. */
  routeType?: DropRouteType;
  env?: Record<string, string>;
  logDir?: string;
  stateDir?: string;
}

export interface RunnerInstance {
  instanceId: string;
  privateIp: string;
  namespace: string;
  logFile: string;
  /** `booting` until its user data has been fetched and started (or found not to be a script). */
  phase: 'booting' | 'up';
  /** The user-data script's process group (its first process's pid); undefined without a script. */
  pgid?: number;
  /** The script's exit code once it ended (a server put in the background outlives it). */
  userDataExit?: number | null;
}

export interface RunnerFailure {
  instanceId: string;
  error: string;
}

interface Managed extends RunnerInstance {
  net: InstanceNet;
  child?: ChildProcess;
}

const signalAll = (pids: number[], sig: NodeJS.Signals) => {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // gone already
    }
  }
};

export class Ec2InstanceRunner {
  readonly logDir: string;
  /** Instances it could not start or stop, with why: an e2e test should expect this to be empty. */
  readonly failures: RunnerFailure[] = [];
  /** What it did, one timestamped line each, to print when a test fails. */
  readonly events: string[] = [];
  private readonly ec2: EC2Client;
  private readonly managed = new Map<string, Managed>();
  private readonly booted = new Set<string>();
  private readonly refused = new Set<string>();
  private readonly state: RunnerState;
  private readonly stateFile: string;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private timer?: NodeJS.Timeout;
  private readonly onExit = () => this.closeSync();

  private constructor(private readonly opts: RunnerOptions, stateDir: string) {
    this.ec2 = ec2Client(opts.endpoint, { region: opts.region ?? 'us-east-1' });
    this.logDir = opts.logDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'ec2-runner-'));
    const metric = 100_000_000 + Math.floor(Math.random() * 1_000_000_000);
    this.state = { pid: process.pid, startTime: processStartTime(process.pid)!, routeType: opts.routeType ?? 'unreachable', metric, dropCidrs: [], instances: {} };
    this.stateFile = path.join(stateDir, `${process.pid}-${metric}.json`);
  }

  /** Why the runner cannot work on this machine, or undefined (for a test to skip with). */
  static unsupported = netnsUnsupported;

  /** Cleans what crashed runs left, drops the VPC CIDRs, then starts watching moto. */
  static async start(opts: RunnerOptions): Promise<Ec2InstanceRunner> {
    const reason = await netnsUnsupported();
    if (reason) throw new Error(`the EC2 instance runner cannot run here: ${reason}`);
    const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
    fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const stale = await cleanStale(stateDir);
    const runner = new Ec2InstanceRunner(opts, stateDir);
    if (stale.length) runner.note(`removed namespaces of a dead run: ${stale.join(' ')}`);
    process.once('exit', runner.onExit);
    try {
      for (const cidr of opts.dropCidrs ?? ['172.31.0.0/16']) await runner.drop(cidr);
      await runner.sync();
    } catch (err) {
      await runner.close();
      throw err;
    }
    runner.schedule();
    return runner;
  }

  /** One pass now (instead of waiting for the next poll): afterwards the namespaces match moto. */
  sync(): Promise<void> {
    const pass = this.chain.then(() => (this.closed ? undefined : this.pass()));
    this.chain = pass.catch((err: Error) => this.note(`poll failed: ${err.message}`));
    return pass;
  }

  instances(): RunnerInstance[] {
    return [...this.managed.values()].map(({ net: _net, child: _child, ...view }) => view);
  }

  instance(instanceId: string): RunnerInstance | undefined {
    return this.instances().find((i) => i.instanceId === instanceId);
  }

  /** The drop routes it holds (`ip route show type <type> <cidr> metric <metric>` shows each). */
  dropRoutes(): Array<{ type: DropRouteType; cidr: string; metric: number }> {
    return this.state.dropCidrs.map((cidr) => ({ type: this.state.routeType, cidr, metric: this.state.metric }));
  }

  /** Waits until the instance's namespace is up and its user data started. */
  async started(instanceId: string, timeoutMs = 60_000): Promise<RunnerInstance> {
    await waitUntil(() => this.managed.get(instanceId)?.phase === 'up' || this.failed(instanceId), `instance ${instanceId} to start in its namespace`, timeoutMs, 50);
    const failure = this.failures.find((f) => f.instanceId === instanceId);
    if (failure) throw new Error(`instance ${instanceId} did not start: ${failure.error}`);
    return this.instance(instanceId)!;
  }

  /** The pids inside the instance's namespace ([] when it has none, or no namespace). */
  async processes(instanceId: string): Promise<number[]> {
    const m = this.managed.get(instanceId);
    return m ? nsPids(m.namespace) : [];
  }

  /** Instances (of those with a namespace) that have a live process: a leaked instance shows here. */
  async live(): Promise<string[]> {
    const all = await Promise.all([...this.managed.keys()].map(async (id) => ((await this.processes(id)).length ? id : undefined)));
    return all.filter((id): id is string => id !== undefined);
  }

  /** Kills the instance's processes behind EC2's back (the instance stays `running`, its address stays routed). */
  async crash(instanceId: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = this.managed.get(instanceId);
    if (!m) throw new Error(`instance ${instanceId} is not running here`);
    this.note(`crash ${instanceId} (${signal})`);
    await this.kill(m, signal === 'SIGKILL' ? 0 : this.opts.terminateGraceMs ?? 2000, signal);
  }

  logFile(instanceId: string): string {
    return path.join(this.logDir, `${instanceId}.log`);
  }

  log(instanceId: string): string {
    try {
      return fs.readFileSync(this.logFile(instanceId), 'utf8');
    } catch {
      return '';
    }
  }

  /**
   * close(), synchronously (SIGKILL, no grace): for a process 'exit' handler of the test's own.
   * The runner registers one itself, so that even a test that never calls close() leaves nothing.
   */
  closeSync(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    teardownSync(this.state, this.stateFile);
    this.managed.clear();
    process.removeListener('exit', this.onExit);
  }

  /** Stops watching and removes everything it made: processes, namespaces, routes, its state file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.chain;
    await Promise.all([...this.managed.values()].map((m) => this.teardown(m, 0)));
    for (const cidr of this.state.dropCidrs) await delDropRoute(this.state.routeType, cidr, this.state.metric);
    this.state.dropCidrs = [];
    fs.rmSync(this.stateFile, { force: true });
    process.removeListener('exit', this.onExit);
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.sync().catch(() => undefined).finally(() => this.schedule()), this.opts.pollMs ?? 200);
    this.timer.unref();
  }

  private note(line: string): void {
    this.events.push(`${new Date().toISOString()} ${line}`);
  }

  private failed(instanceId: string): boolean {
    return this.failures.some((f) => f.instanceId === instanceId);
  }

  private fail(instanceId: string, error: string): void {
    this.note(`FAILED ${instanceId}: ${error}`);
    this.failures.push({ instanceId, error });
  }

  private save(): void {
    writeState(this.stateFile, this.state);
  }

  private async drop(cidr: string): Promise<void> {
    const uses = await hostUsesOf(cidr);
    if (uses.length) throw new Error(`refusing to drop ${cidr}: this host uses it (${uses.join(', ')})`);
    // Recorded first, so a crash right after the route is added still leaves it to be cleaned.
    this.state.dropCidrs.push(cidr);
    this.save();
    await addDropRoute(this.state.routeType, cidr, this.state.metric);
    this.note(`drop route ${this.state.routeType} ${cidr} metric ${this.state.metric}`);
  }

  private covered(ip: string): boolean {
    return this.state.dropCidrs.some((cidr) => cidrContains(cidr, ip));
  }

  private async pass(): Promise<void> {
    const vpcs = await this.ec2.send(new DescribeVpcsCommand({}));
    for (const cidr of new Set((vpcs.Vpcs ?? []).flatMap((v) => [v.CidrBlock, ...(v.CidrBlockAssociationSet ?? []).map((a) => a.CidrBlock)]))) {
      if (cidr && !this.state.dropCidrs.includes(cidr) && !this.covered(cidr.split('/')[0])) {
        await this.drop(cidr).catch((err: Error) => this.note(err.message));
      }
    }
    const seen = new Map<string, { state?: string; ip?: string }>();
    for await (const page of paginateDescribeInstances({ client: this.ec2 }, {})) {
      for (const i of (page.Reservations ?? []).flatMap((r) => r.Instances ?? [])) seen.set(i.InstanceId!, { state: i.State?.Name, ip: i.PrivateIpAddress });
    }
    for (const [id, m] of this.managed) if (seen.get(id)?.state !== 'running') await this.teardown(m, this.opts.terminateGraceMs ?? 2000);
    for (const [id, i] of seen) if (i.state === 'running' && !this.managed.has(id) && !this.refused.has(id)) await this.boot(id, i.ip);
  }

  private async boot(instanceId: string, ip: string | undefined): Promise<void> {
    if (!ip || !this.covered(ip)) {
      this.refused.add(instanceId);
      // Dropped all the same, so that a probe of it from the host never leaves the machine.
      if (ip) await this.drop(`${ip}/32`).catch((err: Error) => this.note(err.message));
      return this.fail(instanceId, `private IP ${ip} is outside the dropped CIDRs ${this.state.dropCidrs.join(', ')} (launch into a subnet: moto gives an instance without SubnetId a random 10.x address)`);
    }
    const net = instanceNet(instanceId, ip);
    this.state.instances[instanceId] = net;
    this.save(); // before creating anything, so that a crash halfway leaves it to the next run
    try {
      await createInstanceNet(net);
    } catch (err) {
      delete this.state.instances[instanceId];
      this.save();
      this.refused.add(instanceId);
      return this.fail(instanceId, (err as Error).message);
    }
    const m: Managed = { instanceId, privateIp: ip, namespace: net.ns, logFile: this.logFile(instanceId), net, phase: 'booting' };
    this.managed.set(instanceId, m);
    this.note(`up ${instanceId} ${ip} in ${net.ns}`);
    try {
      // A restart (stop, start) gets its network back but no second run: user data runs at first boot only.
      if (!this.booted.has(instanceId)) await this.runUserData(m);
    } catch (err) {
      this.fail(instanceId, `user data: ${(err as Error).message}`);
    }
    this.booted.add(instanceId);
    m.phase = 'up';
  }

  private async runUserData(m: Managed): Promise<void> {
    const { instanceId, net } = m;
    const attr = await this.ec2.send(new DescribeInstanceAttributeCommand({ InstanceId: instanceId, Attribute: 'userData' }));
    const script = Buffer.from(attr.UserData?.Value ?? '', 'base64').toString('utf8');
    if (!script.startsWith('#!')) return fs.appendFileSync(m.logFile, `[runner] user data is ${script ? 'not a #! script' : 'empty'}: nothing run\n`);
    const file = path.join(this.logDir, `${instanceId}.user-data`);
    fs.writeFileSync(file, script, { mode: 0o700 });
    // The interpreter named on the #! line, run as the kernel would (so a noexec /tmp does not matter).
    const eol = script.indexOf('\n');
    const shebang = script.slice(2, eol < 0 ? undefined : eol).trim();
    const interpreter = shebang.split(/\s+/, 1)[0];
    const interpreterArg = shebang.slice(interpreter.length).trim();
    const log = fs.openSync(m.logFile, 'a');
    const PATH = [path.dirname(process.execPath), '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':');
    // detached: a process group of its own, which a stop signals as a whole (and only it).
    const child = spawn('ip', ['netns', 'exec', net.ns, interpreter, ...(interpreterArg ? [interpreterArg] : []), file], { cwd: '/', detached: true, stdio: ['ignore', log, log], env: { PATH, HOME: '/root', LANG: 'C.UTF-8', ...this.opts.env } });
    fs.closeSync(log);
    child.unref();
    child.once('exit', (code) => (m.userDataExit = code));
    m.child = child;
    m.pgid = child.pid;
    this.note(`user data of ${instanceId} started, pgid ${child.pid}`);
  }

  /** Signals the process group and every process in the namespace; SIGKILL after `graceMs`; waits until none is left. */
  private async kill(m: Managed, graceMs: number, first: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const all = async () => [...(m.pgid ? [-m.pgid] : []), ...(await nsPids(m.namespace))];
    const none = async () => (await nsPids(m.namespace)).length === 0;
    signalAll(await all(), graceMs > 0 ? first : 'SIGKILL');
    if (graceMs > 0) {
      await waitUntil(none, 'the instance to exit', graceMs, 50).catch(async () => signalAll(await all(), 'SIGKILL'));
    }
    await waitUntil(async () => ((await none()) ? true : (signalAll(await all(), 'SIGKILL'), false)), `the processes of ${m.instanceId} to die`, 30_000, 50);
    // The script's first process is our child: dead only once Node has reaped it (until then a zombie).
    const child = m.child;
    if (child && child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
  }

  private async teardown(m: Managed, graceMs: number): Promise<void> {
    await this.kill(m, graceMs).catch((err: Error) => this.fail(m.instanceId, `teardown: ${err.message}`));
    await deleteInstanceNet(m.net);
    this.note(`down ${m.instanceId} ${m.privateIp}`);
    this.managed.delete(m.instanceId);
    delete this.state.instances[m.instanceId];
    this.save();
  }
}
