/**
 * An HTTP proxy on loopback in front of moto that answers chosen EC2 calls with the errors
 * moto never produces (capacity, throttling, quotas), in EC2's own wire format, so the code
 * under test meets them through the SDK's real parsing and retries. It can also let a call
 * take effect at moto and then reset the connection (a crash between RunInstances and its
 * answer). Everything else is forwarded unchanged.
 *
 * EC2's Query API: POST /, form-encoded `Action=RunInstances&InstanceType=g5.xlarge&...`.
 * HTTP statuses (EC2 API reference, "Error codes for the Amazon EC2 API": client errors come
 * with a 400-series status, server errors with a 500-series one; InsufficientInstanceCapacity,
 * InsufficientHostCapacity, InsufficientAddressCapacity, InternalError and Unavailable are in
 * its server table). Observed on the wire: InsufficientInstanceCapacity 500 and
 * RequestLimitExceeded 503 ("Service Unavailable"); client codes such as InstanceLimitExceeded,
 * VcpuLimitExceeded or InvalidParameterValue are 400.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DescribeSubnetsCommand, type EC2Client } from '@aws-sdk/client-ec2';
import { mulberry32 } from './faulty-provider';
import { ec2Client } from './moto';

export const EC2_ERROR_STATUS: Record<string, number> = {
  InsufficientInstanceCapacity: 500,
  InsufficientHostCapacity: 500,
  InsufficientAddressCapacity: 500,
  InsufficientReservedInstanceCapacity: 500,
  InternalError: 500,
  Unavailable: 503,
  RequestLimitExceeded: 503,
};

type OneOrMany = string | string[];
type ActiveRule = FaultRule & { id: string; seen: number };

export interface FaultRule {
  /** Named in `counts` (default: rule-<n>). */
  id?: string;
  /** Every given criterion must match; none given matches every call. */
  action?: OneOrMany;
  instanceType?: OneOrMany;
  /** `Placement.AvailabilityZone`, or the AZ of the call's subnet (looked up at moto once). */
  availabilityZone?: OneOrMany;
  /** `SubnetId` or `NetworkInterface.N.SubnetId`. */
  subnetId?: OneOrMany;
  /** Any other test on the form parameters. */
  match?: (params: URLSearchParams) => boolean;
  /** Only the first N matching calls (after `fraction`); later ones pass. */
  times?: number;
  /** Only this share of matching calls, drawn from the proxy's seeded RNG. */
  fraction?: number;
  /** Answer with this EC2 error (status from EC2_ERROR_STATUS, else 400, unless given). */
  error?: { code: string; message?: string; status?: number };
  /**
   * Reset the connection instead of answering: `after-forward` once moto has carried the call
   * out (it took effect, the client never hears), `before-forward` without forwarding it.
   */
  drop?: 'after-forward' | 'before-forward';
  /**
   * Runs once moto has carried the call out, before the client gets an answer (or, with
   * `drop: 'after-forward'`, its reset): e.g. kill the worker right after RunInstances took effect.
   */
  afterForward?: (call: ProxiedCall) => void | Promise<void>;
}

export interface ProxiedCall {
  action: string;
  params: URLSearchParams;
  /** The rule that answered it, or undefined when it was forwarded as it was. */
  rule?: string;
  status?: number;
}

export interface FaultProxyOptions {
  /** moto's endpoint. */
  target: string;
  /** For `fraction` rules (default 1). */
  seed?: number;
  region?: string;
}

const list = (v: OneOrMany | undefined) => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);
const escapeXml = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** EC2's error body, as the SDK's ec2 query protocol parses it. */
export function ec2ErrorXml(code: string, message: string, requestId = crypto.randomUUID()): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>`;
}

function defaultMessage(code: string, p: URLSearchParams, az: string | undefined): string {
  if (code === 'InsufficientInstanceCapacity') {
    const type = p.get('InstanceType') ?? 'the requested';
    return `We currently do not have sufficient ${type} capacity in the Availability Zone you requested (${az ?? 'unknown'}). Our system will be working on provisioning additional capacity.`;
  }
  if (code === 'RequestLimitExceeded') return 'Request limit exceeded.';
  return `${code} (injected by the test's EC2 fault proxy)`;
}

export class Ec2FaultProxy {
  /** Answered calls per rule id. */
  readonly counts: Record<string, number> = {};
  /** Every call that went through, in order. */
  readonly calls: ProxiedCall[] = [];
  private rules: ActiveRule[] = [];
  private nextId = 1;
  private readonly rng: () => number;
  private readonly moto: EC2Client;
  private readonly subnetAz = new Map<string, string | undefined>();

  private constructor(private readonly server: http.Server, readonly endpoint: string, private readonly opts: FaultProxyOptions) {
    this.rng = mulberry32(opts.seed ?? 1);
    this.moto = ec2Client(opts.target, { region: opts.region ?? 'us-east-1' });
  }

  static async start(opts: FaultProxyOptions): Promise<Ec2FaultProxy> {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new Ec2FaultProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, opts);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => void proxy.handle(req, res).catch(() => res.destroy()));
    return proxy;
  }

  /** Adds a rule (checked after those before it); returns its id. */
  addRule(rule: FaultRule): string {
    const id = rule.id ?? `rule-${this.nextId++}`;
    this.rules.push({ ...rule, id, seen: 0 });
    this.counts[id] ??= 0;
    return id;
  }

  /** Ends a fault at run time (say, the end of a stockout). */
  removeRule(id: string): void {
    this.rules = this.rules.filter((r) => r.id !== id);
  }

  clearRules(): void {
    this.rules = [];
  }

  /** The calls of one action that reached the proxy (answered or forwarded). */
  callsOf(action: string): ProxiedCall[] {
    return this.calls.filter((c) => c.action === action);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async azOf(p: URLSearchParams): Promise<string | undefined> {
    const placed = p.get('Placement.AvailabilityZone');
    const subnet = p.get('SubnetId') ?? p.get('NetworkInterface.1.SubnetId');
    if (placed || !subnet) return placed ?? undefined;
    if (!this.subnetAz.has(subnet)) {
      const res = await this.moto.send(new DescribeSubnetsCommand({ SubnetIds: [subnet] })).catch(() => undefined);
      this.subnetAz.set(subnet, res?.Subnets?.[0]?.AvailabilityZone);
    }
    return this.subnetAz.get(subnet);
  }

  private async pick(p: URLSearchParams): Promise<{ rule?: ActiveRule; az?: string }> {
    const az = await this.azOf(p);
    const subnets = [p.get('SubnetId'), ...[...p.keys()].filter((k) => /^NetworkInterface\.\d+\.SubnetId$/.test(k)).map((k) => p.get(k))];
    for (const rule of this.rules) {
      const hit = (want: OneOrMany | undefined, got: Array<string | null | undefined>) => !list(want) || got.some((g) => g && list(want)!.includes(g));
      if (!hit(rule.action, [p.get('Action')]) || !hit(rule.instanceType, [p.get('InstanceType')]) || !hit(rule.availabilityZone, [az]) || !hit(rule.subnetId, subnets)) continue;
      if (rule.match && !rule.match(p)) continue;
      if (rule.fraction !== undefined && this.rng() >= rule.fraction) continue;
      if (rule.times !== undefined && rule.seen >= rule.times) continue;
      rule.seen++;
      return { rule, az };
    }
    return { az };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const params = new URLSearchParams(req.method === 'POST' ? body.toString('utf8') : (req.url ?? '').split('?')[1] ?? '');
    const call: ProxiedCall = { action: params.get('Action') ?? '', params };
    this.calls.push(call);
    const { rule, az } = await this.pick(params);
    if (rule) {
      call.rule = rule.id;
      this.counts[rule.id]++;
    }
    if (rule?.drop === 'before-forward') return void res.socket?.destroy();
    if (rule?.error) {
      const { code } = rule.error;
      const status = rule.error.status ?? EC2_ERROR_STATUS[code] ?? 400;
      call.status = status;
      const requestId = crypto.randomUUID();
      // EC2 sends the request id in the body and in this header; the SDK's $metadata.requestId reads the header.
      res.writeHead(status, { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': requestId });
      return void res.end(ec2ErrorXml(code, rule.error.message ?? defaultMessage(code, params, az), requestId));
    }
    const answer = await this.forward(req, body);
    call.status = answer.status;
    await rule?.afterForward?.(call);
    // The call took effect at moto; the client only sees its connection reset.
    if (rule?.drop === 'after-forward') return void res.socket?.destroy();
    // Hop-by-hop headers are the proxy's own business; the body is sent whole, with its length.
    const headers: http.OutgoingHttpHeaders = { ...answer.headers, 'content-length': String(answer.body.length) };
    for (const h of ['connection', 'keep-alive', 'transfer-encoding']) delete headers[h];
    res.writeHead(answer.status, headers);
    res.end(answer.body);
  }

  private forward(req: http.IncomingMessage, body: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    const target = new URL(this.opts.target);
    return new Promise((resolve, reject) => {
      const out = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      out.on('error', reject);
      out.end(body);
    });
  }
}
