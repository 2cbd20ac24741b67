/**
 * The AWS provider: each replica is an EC2 instance, found by its tags (tags.ts), never only from
 * memory, so a restarted worker, another worker or `rollout gc` finds every instance.
 *
 * launch: an instance tagged with the replica id that is pending or running is the replica (a
 * retry after a crash between RunInstances and the activity's completion returns it). Otherwise
 * RunInstances, with a ClientToken per replica and attempt (EC2's own idempotency; moto ignores
 * it, hence the tag lookup), across the placement order (placement.ts): markets, catalog types,
 * subnets. Capacity and quota errors move on; when everything is out, a retryable CapacityError
 * says what was tried. Throttling backs off with jitter, then a retryable ThrottlingError. Bad
 * configuration fails at once, not retryable, naming the field to fix.
 *
 * GPUs are not accounted (`gpus()` is lenient): each instance brings its own, and what EC2 can
 * give (quotas per instance family in vCPUs, stockouts per AZ) is only known by asking, at launch.
 *
 * Credentials come from the SDK's standard chain, the region from the worker's AWS config or the
 * SDK (AWS_REGION, the profile), the endpoint from AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_EC2, which
 * the SDK reads itself (that is how the tests point it at moto on loopback).
 */
import crypto from 'node:crypto';
import {
  DescribeImagesCommand,
  EC2Client,
  paginateDescribeInstances,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type Filter,
  type Instance,
} from '@aws-sdk/client-ec2';
import pino from 'pino';
import { KeyedMutex } from '../local/locks';
import { ProviderError, type GpuInventory, type HeldReplica, type LaunchRequest, type Provider, type ReplicaDescription, type ReplicaHandle } from '../types';
import { DEFAULT_BACKOFF, withBackoff, type BackoffOptions } from './backoff';
import { clientToken } from './client-token';
import type { AwsWorkerConfig } from './config';
import { classifyEc2Error, describeEc2Error, errorCode, providerErrorFrom } from './errors';
import { describeInstance, duplicatesOf, endpointOf, gpuIdsOf, pickReplicaInstance } from './instance-state';
import { attemptInput, launchPlan, type LaunchPlan } from './launch-plan';
import { OfferingsCache } from './offerings';
import { describeFailures, formatAzs, placementOrder, runPlacement, type Attempt, type AttemptOutcome } from './placement';
import { SubnetDirectory } from './subnets';
import { anyReplica, byInstanceIds, byService, inStates, LIVE_STATES, NOT_TERMINATED_STATES, replicaFilters, replicaIdParts, specFingerprint, tagOf, TAGS, tagsAgree } from './tags';

export interface AwsProviderOptions {
  config: AwsWorkerConfig;
  /** Injected in tests; default: a client with the config's region (else the SDK's own). */
  ec2?: EC2Client;
  logger?: pino.Logger;
  backoff?: BackoffOptions;
  /** How long terminate waits for `terminated` before `shutting-down` is accepted; default 120 s. */
  terminateWaitMs?: number;
  /** How long launch waits for a public address (public_ip); default 60 s. */
  addressWaitMs?: number;
  pollMs?: number;
}

const REPLICA_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** A replica id that was terminated and launched again gets a fresh token, at most this many times per launch. */
const MAX_TOKEN_GENERATIONS = 3;

export class AwsProvider implements Provider {
  readonly name = 'aws';
  readonly ec2: EC2Client;
  private readonly config: AwsWorkerConfig;
  private readonly logger: pino.Logger;
  private readonly backoff: BackoffOptions;
  private readonly terminateWaitMs: number;
  private readonly addressWaitMs: number;
  private readonly pollMs: number;
  private readonly subnets: SubnetDirectory;
  private readonly offerings: OfferingsCache;
  private readonly rootDevices = new Map<string, string>();
  /** One launch or terminate per replica id at a time within this worker. */
  private readonly byId = new KeyedMutex();

  constructor(opts: AwsProviderOptions) {
    this.config = opts.config;
    this.ec2 = opts.ec2 ?? new EC2Client(opts.config.region ? { region: opts.config.region } : {});
    this.logger = opts.logger ?? pino({ name: 'aws-provider' });
    this.backoff = opts.backoff ?? DEFAULT_BACKOFF;
    this.terminateWaitMs = opts.terminateWaitMs ?? 120_000;
    this.addressWaitMs = opts.addressWaitMs ?? 60_000;
    this.pollMs = opts.pollMs ?? 2000;
    this.subnets = new SubnetDirectory(this.ec2, opts.config.subnets);
    this.offerings = new OfferingsCache(this.ec2, this.logger);
  }

  async launch(req: LaunchRequest): Promise<ReplicaHandle> {
    if (!REPLICA_ID.test(req.replicaId)) throw new ProviderError(`invalid replica id ${JSON.stringify(req.replicaId)}`, 'InvalidRequest', false);
    return this.byId.run(req.replicaId, () => this.launchLocked(req));
  }

  async describe(replicaId: string): Promise<ReplicaDescription> {
    const chosen = REPLICA_ID.test(replicaId) ? pickReplicaInstance((await this.instances(replicaFilters(replicaId), `DescribeInstances for ${replicaId}`)).filter((i) => agreesWith(i, replicaId))) : undefined;
    if (!chosen) return { replicaId, service: '', version: 0, endpoint: '', gpuIds: [], externalId: '', state: 'missing' };
    return describeInstance(chosen, replicaId);
  }

  /** Terminates every instance tagged with the replica id (duplicates too); one that is gone already is fine. */
  async terminate(replicaId: string): Promise<void> {
    if (!REPLICA_ID.test(replicaId)) return;
    await this.byId.run(replicaId, () => this.terminateLocked(replicaId));
  }

  async list(service?: string): Promise<ReplicaDescription[]> {
    const instances = await this.instances([service ? byService(service) : anyReplica(), inStates(NOT_TERMINATED_STATES)], `DescribeInstances for ${service ?? 'every service'}`);
    const byReplicaId = new Map<string, Instance[]>();
    for (const i of instances) {
      const id = tagOf(i.Tags, TAGS.replica);
      if (id) byReplicaId.set(id, [...(byReplicaId.get(id) ?? []), i]);
    }
    return [...byReplicaId].flatMap(([id, group]) => {
      const chosen = pickReplicaInstance(group);
      return chosen ? [describeInstance(chosen, id)] : [];
    });
  }

  /**
   * Every instance tagged for the service and not terminated, one entry each, for `rollout gc`
   * and the sweeps: those without a replica tag too, and marked `stray` when it cannot be the
   * replica its tag names (its tags disagree with the id, or it is a younger duplicate).
   */
  async listHeld(service: string): Promise<HeldReplica[]> {
    const instances = await this.instances([byService(service), inStates(NOT_TERMINATED_STATES)], `DescribeInstances for ${service}`);
    const chosen = new Set<string>();
    const byId = new Map<string, Instance[]>();
    for (const i of instances.filter((x) => tagsAgree(x.Tags))) {
      const id = tagOf(i.Tags, TAGS.replica) ?? '';
      byId.set(id, [...(byId.get(id) ?? []), i]);
    }
    for (const group of byId.values()) {
      const pick = pickReplicaInstance(group);
      if (pick?.InstanceId) chosen.add(pick.InstanceId);
    }
    return instances.map((i) => {
      const version = Number(tagOf(i.Tags, TAGS.version));
      return {
        replicaId: tagOf(i.Tags, TAGS.replica) ?? '',
        version: Number.isInteger(version) && version > 0 ? version : null,
        state: i.State?.Name ?? '',
        externalId: i.InstanceId ?? '',
        stray: !chosen.has(i.InstanceId ?? ''),
      };
    });
  }

  /** Terminates these instances, if they are tagged for the service (no other is touched), and waits until they are gone. */
  async terminateHeld(service: string, externalIds: string[]): Promise<void> {
    if (!externalIds.length) return;
    await this.terminateAndWait([byService(service), byInstanceIds(externalIds)], `${service}'s ${externalIds.join(', ')}`);
  }

  /** Lenient: EC2 capacity is discovered at launch (CapacityError), not counted up front. */
  async gpus(): Promise<GpuInventory> {
    return { total: 0, free: 0, strict: false };
  }

  /** The region calls go to (the config's, else the SDK's); a clear error when there is none. */
  async region(): Promise<string> {
    try {
      return await this.ec2.config.region();
    } catch {
      throw new ProviderError(`no AWS region: set region in the worker's AWS config (ROLLOUT_AWS_CONFIG) or AWS_REGION`, 'InvalidRequest', false);
    }
  }

  private async launchLocked(req: LaunchRequest): Promise<ReplicaHandle> {
    const resources = req.resources ?? { provider: 'aws', ...(req.instanceType ? { instance_type: req.instanceType } : {}) };
    const region = await this.region();
    if (resources.region && resources.region !== region) {
      throw new ProviderError(`resources.region is ${resources.region}, but this worker launches in ${region} (its AWS config's region, or AWS_REGION): run a worker for ${resources.region}`, 'InvalidRequest', false);
    }

    const fingerprint = specFingerprint({ run: req.run, env: req.env, resources, gpus: req.gpus });
    const live = await this.liveInstances(req.replicaId);
    // An instance of this id that runs something else is a leftover of an earlier life of the
    // service (its workflow was terminated, versions began again at 1): never adopted.
    const leftovers = live.filter((i) => !isOurs(i, fingerprint));
    if (leftovers.length) {
      this.logger.warn({ replicaId: req.replicaId, leftovers: leftovers.map((i) => i.InstanceId) }, 'instances of this replica id run another spec (left from an earlier life of the service): terminating them');
      await this.terminateIds(leftovers.map((i) => i.InstanceId ?? '').filter(Boolean), req.replicaId);
    }
    const existing = live.filter((i) => isOurs(i, fingerprint));
    const found = pickReplicaInstance(existing);
    if (found) {
      this.logger.info({ replicaId: req.replicaId, instanceId: found.InstanceId }, 'replica already has an instance: returning it');
      return this.settle(req.replicaId, found, existing);
    }

    const imageId = resources.image_id ?? (resources.launch_template ? undefined : this.config.image_id);
    const rootDeviceName = resources.root_volume_gb !== undefined && imageId ? await this.rootDeviceOf(imageId) : undefined;
    const plan = launchPlan({ req, resources, config: this.config, rootDeviceName });
    const subnets = await this.subnets.subnets();
    const types = plan.instanceTypes.filter((t): t is string => t !== undefined);
    const offered = types.length ? await this.offerings.offered(types) : new Map<string, Set<string>>();
    const { attempts, notOffered } = placementOrder(plan.markets, plan.instanceTypes, subnets, (t) => offered.get(t));
    if (attempts.length === 0) throw notOfferedError(types, offered, subnets.map((s) => s.az), region);

    const result = await runPlacement(attempts, (a) => this.tryAttempt(req.replicaId, plan, a));
    if (!result.ok) {
      const what = describeFailures(result.failures, notOffered, region);
      if (result.failures.every((f) => f.code === 'Unsupported')) {
        throw new ProviderError(`${req.replicaId}: no AZ of the worker's subnets supports this launch: ${what}`, 'InvalidRequest', false);
      }
      throw new ProviderError(`${req.replicaId}: ${what}`, 'CapacityError', true);
    }
    if (result.failures.length) {
      this.logger.info({ replicaId: req.replicaId, instanceType: result.attempt.instanceType, az: result.attempt.az, market: result.attempt.market, tried: describeFailures(result.failures, [], region) }, 'launched after capacity errors');
    }
    const launched = result.value;
    this.logger.info({ replicaId: req.replicaId, instanceId: launched.InstanceId, instanceType: launched.InstanceType, az: result.attempt.az }, 'instance launched');
    // A launch of the same replica elsewhere at the same time (two attempts of one activity) may
    // have started a second instance: the oldest is the replica, the others are terminated.
    const now = (await this.liveInstances(req.replicaId)).filter((i) => isOurs(i, fingerprint));
    const all = now.some((i) => i.InstanceId === launched.InstanceId) ? now : [...now, launched];
    const chosen = pickReplicaInstance(all) ?? launched;
    return this.settle(req.replicaId, chosen, all);
  }

  /** One RunInstances: the instance, or the capacity error that moves the placement on. */
  private async tryAttempt(replicaId: string, plan: LaunchPlan, attempt: Attempt): Promise<AttemptOutcome<Instance>> {
    const input = attemptInput(plan, attempt, this.config.security_groups);
    const fingerprint = crypto.createHash('sha256').update(JSON.stringify(input)).digest('hex');
    let generation = '';
    for (let n = 0; n < MAX_TOKEN_GENERATIONS; n++) {
      const where = `${attempt.instanceType ?? "the launch template's type"}${attempt.market === 'spot' ? ' (spot)' : ''} in ${attempt.az}`;
      let instance: Instance | undefined;
      try {
        const out = await withBackoff(() => this.ec2.send(new RunInstancesCommand({ ...input, ClientToken: clientToken(replicaId, fingerprint, generation) })), isThrottled, this.backoff);
        instance = out.Instances?.[0];
      } catch (err) {
        const kind = classifyEc2Error(err);
        if (kind.kind === 'capacity') {
          this.logger.info({ replicaId, attempt, code: errorCode(err) }, 'no capacity: trying the next placement');
          return { ok: false, code: errorCode(err), scope: kind.scope };
        }
        if (kind.kind === 'throttled') {
          throw new ProviderError(`RunInstances for ${replicaId} (${where}): EC2 throttled ${this.backoff.attempts} calls in a row (${describeEc2Error(err)})`, 'ThrottlingError', true);
        }
        throw providerErrorFrom(err, `RunInstances for ${replicaId} (${where})`);
      }
      if (!instance?.InstanceId) throw new ProviderError(`RunInstances for ${replicaId} (${where}) returned no instance`, 'ProviderError', true);
      const state = instance.State?.Name ?? '';
      if (LIVE_STATES.includes(state) || state === '') return { ok: true, value: instance };
      // EC2 answered with the instance an earlier launch of this replica id made with this
      // token, since terminated: launch again under a token of its own.
      this.logger.info({ replicaId, instanceId: instance.InstanceId, state }, 'client token belongs to a finished instance: new token');
      generation = instance.InstanceId;
    }
    throw new ProviderError(`RunInstances for ${replicaId} kept returning terminated instances`, 'ProviderError', true);
  }

  /** The chosen instance as a handle, once it has its address; the other live ones terminated. */
  private async settle(replicaId: string, chosen: Instance, all: Instance[]): Promise<ReplicaHandle> {
    const extra = duplicatesOf(all, chosen).map((i) => i.InstanceId ?? '').filter(Boolean);
    if (extra.length) {
      this.logger.warn({ replicaId, kept: chosen.InstanceId, terminating: extra }, 'more than one instance for one replica: terminating the younger ones');
      await this.terminateIds(extra, replicaId);
    }
    const instance = endpointOf(chosen) ? chosen : await this.waitForAddress(replicaId, chosen);
    const d = describeInstance(instance, replicaId);
    return { replicaId, service: d.service, version: d.version, endpoint: d.endpoint, gpuIds: gpuIdsOf(instance.InstanceType), externalId: d.externalId };
  }

  /** A public address comes a moment after launch. */
  private async waitForAddress(replicaId: string, instance: Instance): Promise<Instance> {
    const deadline = Date.now() + this.addressWaitMs;
    for (;;) {
      const now = (await this.instances([byInstanceIds([instance.InstanceId ?? ''])], `DescribeInstances for ${replicaId}`)).find((i) => i.InstanceId === instance.InstanceId);
      if (now && endpointOf(now)) return now;
      if (Date.now() >= deadline) {
        throw new ProviderError(`instance ${instance.InstanceId} of ${replicaId} has no ${tagOf(instance.Tags, TAGS.address) ?? 'private'} address after ${Math.round(this.addressWaitMs / 1000)} s (does its subnet assign public addresses?)`, 'ProviderError', true);
      }
      await this.backoff.sleep(this.pollMs);
    }
  }

  private async terminateLocked(replicaId: string): Promise<void> {
    await this.terminateAndWait(replicaFilters(replicaId), replicaId);
  }

  /** Terminates every instance the filters match, and waits until they are terminated (shutting-down, after terminateWaitMs). */
  private async terminateAndWait(filters: Filter[], what: string): Promise<void> {
    const replicaId = what;
    const ids = (await this.instances([...filters, inStates(NOT_TERMINATED_STATES)], `DescribeInstances for ${replicaId}`)).map((i) => i.InstanceId ?? '').filter(Boolean);
    if (!ids.length) return;
    await this.terminateIds(ids, replicaId);
    const deadline = Date.now() + this.terminateWaitMs;
    for (;;) {
      const left = await this.instances([...filters, inStates(NOT_TERMINATED_STATES)], `DescribeInstances for ${replicaId}`);
      if (!left.length) return;
      const alive = left.filter((i) => i.State?.Name !== 'shutting-down');
      if (Date.now() >= deadline) {
        if (!alive.length) {
          this.logger.info({ replicaId, instances: left.map((i) => i.InstanceId) }, 'instances still shutting down: terminated as far as the replica goes');
          return;
        }
        throw new ProviderError(`${replicaId}: ${alive.map((i) => `${i.InstanceId} ${i.State?.Name}`).join(', ')} after TerminateInstances`, 'ProviderError', true);
      }
      if (alive.length) await this.terminateIds(alive.map((i) => i.InstanceId ?? '').filter(Boolean), replicaId);
      await this.backoff.sleep(this.pollMs);
    }
  }

  /** TerminateInstances; an id EC2 does not know (InvalidInstanceID.NotFound fails the whole call) is skipped. */
  private async terminateIds(ids: string[], replicaId: string): Promise<void> {
    const terminate = (batch: string[]) => withBackoff(() => this.ec2.send(new TerminateInstancesCommand({ InstanceIds: batch })), isThrottled, this.backoff);
    try {
      await terminate(ids);
    } catch (err) {
      if (classifyEc2Error(err).kind !== 'notFound') throw providerErrorFrom(err, `TerminateInstances for ${replicaId}`);
      for (const id of ids) {
        try {
          await terminate([id]);
        } catch (one) {
          if (classifyEc2Error(one).kind !== 'notFound') throw providerErrorFrom(one, `TerminateInstances ${id} for ${replicaId}`);
        }
      }
    }
  }

  /** The replica's live instances: its id and service, tags that agree with the id (a stray with a wrong version tag is not it). */
  private async liveInstances(replicaId: string): Promise<Instance[]> {
    return (await this.instances([...replicaFilters(replicaId), inStates(LIVE_STATES)], `DescribeInstances for ${replicaId}`)).filter((i) => agreesWith(i, replicaId));
  }

  private async instances(filters: Filter[], what: string): Promise<Instance[]> {
    try {
      return await withBackoff(
        async () => {
          const out: Instance[] = [];
          for await (const page of paginateDescribeInstances({ client: this.ec2 }, { Filters: filters })) {
            for (const r of page.Reservations ?? []) out.push(...(r.Instances ?? []));
          }
          return out;
        },
        isThrottled,
        this.backoff,
      );
    } catch (err) {
      throw providerErrorFrom(err, what);
    }
  }

  private async rootDeviceOf(imageId: string): Promise<string> {
    const known = this.rootDevices.get(imageId);
    if (known) return known;
    let name: string | undefined;
    try {
      const out = await withBackoff(() => this.ec2.send(new DescribeImagesCommand({ ImageIds: [imageId] })), isThrottled, this.backoff);
      name = out.Images?.[0]?.RootDeviceName;
    } catch (err) {
      throw providerErrorFrom(err, `DescribeImages for ${imageId}`);
    }
    if (!name) throw new ProviderError(`AMI ${imageId} was not found in the worker's region (resources.image_id, or image_id in the worker's AWS config)`, 'InvalidRequest', false);
    this.rootDevices.set(imageId, name);
    return name;
  }
}

/** No attempt possible: the types exist nowhere in the region (a typo?) or not in the worker's AZs. */
function notOfferedError(types: string[], offered: Map<string, Set<string>>, azs: string[], region: string): ProviderError {
  const nowhere = types.filter((t) => offered.get(t)?.size === 0);
  const message =
    nowhere.length === types.length
      ? `${types.join(', ')} ${types.length > 1 ? 'are' : 'is'} offered in no AZ of ${region} (check resources.instance_type or resources.accelerators, and the region)`
      : `${types.join(', ')} ${types.length > 1 ? 'are' : 'is'} not offered in any AZ of the worker's subnets (${formatAzs(azs)}) in ${region}: add subnets in other AZs to the worker's AWS config or choose other accelerators`;
  return new ProviderError(message, 'InvalidRequest', false);
}

/** An instance tagged with the id is the replica only if its other tags agree with the id (when the id has the workflows' form). */
const agreesWith = (i: Instance, replicaId: string) => !replicaIdParts(replicaId) || tagsAgree(i.Tags);

/** Launched for this spec (an instance from before fingerprints, without the tag, counts as ours). */
const isOurs = (i: Instance, fingerprint: string) => {
  const tag = tagOf(i.Tags, TAGS.spec);
  return tag === undefined || tag === fingerprint;
};

const isThrottled = (err: unknown) => classifyEc2Error(err).kind === 'throttled';
