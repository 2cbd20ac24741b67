/**
 * An EC2 instance as a replica: its state in the provider's terms, its endpoint, and which of
 * several instances tagged with one replica id stands for it. Pure.
 *
 *   pending, running                → running  (alive; the readiness probe decides when it is READY:
 *                                               a pending instance is simply one that is not ready yet)
 *   stopping, stopped               → exited   ("stopped: Client.UserInitiatedShutdown…")
 *   shutting-down, terminated       → exited   ("terminated: Server.SpotInstanceTermination…")
 *   no instance with the tag        → missing
 */
import type { Instance } from '@aws-sdk/client-ec2';
import type { ProviderReplicaState, ReplicaDescription } from '../types';
import { catalogEntry } from './catalog';
import { LIVE_STATES, tagOf, TAGS } from './tags';

export function replicaState(instance: Instance): ProviderReplicaState {
  const name = instance.State?.Name ?? '';
  return LIVE_STATES.includes(name) ? 'running' : 'exited';
}

/** `http://<address>:<port>` from the instance's tags and addresses; '' while the address is not known yet. */
export function endpointOf(instance: Instance): string {
  const port = tagOf(instance.Tags, TAGS.port) ?? '';
  const address = tagOf(instance.Tags, TAGS.address) === 'public' ? instance.PublicIpAddress : instance.PrivateIpAddress;
  return address && port ? `http://${address}:${port}` : '';
}

/** The GPUs an instance has (from the catalog), as indices: the whole instance is the replica's. */
export function gpuIdsOf(instanceType: string | undefined): number[] {
  const gpus = instanceType ? (catalogEntry(instanceType)?.gpus ?? 0) : 0;
  return Array.from({ length: gpus }, (_, i) => i);
}

export function describeInstance(instance: Instance, replicaId: string): ReplicaDescription {
  const state = replicaState(instance);
  const reason = instance.StateReason?.Message ?? instance.StateTransitionReason;
  return {
    replicaId,
    service: tagOf(instance.Tags, TAGS.service) ?? '',
    version: Number(tagOf(instance.Tags, TAGS.version) ?? 0),
    endpoint: endpointOf(instance),
    gpuIds: gpuIdsOf(instance.InstanceType),
    externalId: instance.InstanceId ?? '',
    state,
    ...(state === 'exited' ? { exitInfo: `instance ${instance.InstanceId} ${instance.State?.Name ?? 'gone'}${reason ? `: ${reason}` : ''}` } : {}),
  };
}

const launchedAt = (i: Instance) => (i.LaunchTime ? new Date(i.LaunchTime).getTime() : 0);
/** Oldest first, instance id breaking ties: every worker picks the same one. */
const oldestFirst = (a: Instance, b: Instance) => launchedAt(a) - launchedAt(b) || (a.InstanceId ?? '').localeCompare(b.InstanceId ?? '');

/**
 * The instance that is the replica: the oldest live one (a duplicate launched by a race is the
 * younger one), else the most recently launched of the others.
 */
export function pickReplicaInstance(instances: Instance[]): Instance | undefined {
  const live = instances.filter((i) => replicaState(i) === 'running').sort(oldestFirst);
  if (live.length) return live[0];
  return [...instances].sort(oldestFirst).pop();
}

/** Live instances tagged with the replica id besides the chosen one: duplicates, to terminate. */
export function duplicatesOf(instances: Instance[], chosen: Instance): Instance[] {
  return instances.filter((i) => i.InstanceId !== chosen.InstanceId && replicaState(i) === 'running');
}
