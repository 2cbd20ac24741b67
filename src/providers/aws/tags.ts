/**
 * The tags that make an instance a replica: every instance the provider launches carries the
 * service, version and replica id, so it is found by tag alone (after a worker crash, by
 * another worker, by `rollout gc`), never only from memory. Pure.
 */
import type { Filter, Tag } from '@aws-sdk/client-ec2';

export const TAG_PREFIX = 'gpu-rollout:';
export const TAGS = {
  service: `${TAG_PREFIX}service`,
  version: `${TAG_PREFIX}version`,
  replica: `${TAG_PREFIX}replica`,
  /** The port the replica listens on, so `describe` can rebuild its endpoint. */
  port: `${TAG_PREFIX}port`,
  /** `private` or `public`: which of the instance's addresses the endpoint uses. */
  address: `${TAG_PREFIX}address`,
} as const;

/** States of an instance that is or will be a running replica. */
export const LIVE_STATES = ['pending', 'running'];
/** Every state but terminated: what may still cost money or hold a replica's process. */
export const NOT_TERMINATED_STATES = ['pending', 'running', 'shutting-down', 'stopping', 'stopped'];

export interface ReplicaTags {
  service: string;
  version: number;
  replicaId: string;
  port: number;
  address: 'private' | 'public';
}

/** The tags of a new instance: ours, the worker's extra ones, and `Name` for the console. */
export function instanceTags(t: ReplicaTags, extra: Record<string, string> = {}): Tag[] {
  const ours: Record<string, string> = {
    Name: t.replicaId,
    [TAGS.service]: t.service,
    [TAGS.version]: String(t.version),
    [TAGS.replica]: t.replicaId,
    [TAGS.port]: String(t.port),
    [TAGS.address]: t.address,
  };
  return Object.entries({ ...extra, ...ours }).map(([Key, Value]) => ({ Key, Value }));
}

export const byReplica = (replicaId: string): Filter => ({ Name: `tag:${TAGS.replica}`, Values: [replicaId] });
export const byService = (service: string): Filter => ({ Name: `tag:${TAGS.service}`, Values: [service] });
export const anyReplica = (): Filter => ({ Name: 'tag-key', Values: [TAGS.replica] });
export const inStates = (states: string[]): Filter => ({ Name: 'instance-state-name', Values: states });

/** A tag's value on an instance. */
export function tagOf(tags: Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}
