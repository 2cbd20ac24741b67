/**
 * The tags that make an instance a replica: every instance the provider launches carries the
 * service, version and replica id, so it is found by tag alone (after a worker crash, by
 * another worker, by `rollout gc`), never only from memory. Pure.
 */
import crypto from 'node:crypto';
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
  /**
   * A fingerprint of what the instance runs (run, env, resources): an instance tagged with a
   * replica id but another fingerprint is a leftover of an earlier life of the service (its
   * workflow was terminated and versions started again at 1), never adopted as the replica.
   */
  spec: `${TAG_PREFIX}spec`,
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
  spec: string;
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
    [TAGS.spec]: t.spec,
  };
  return Object.entries({ ...extra, ...ours }).map(([Key, Value]) => ({ Key, Value }));
}

export const byReplica = (replicaId: string): Filter => ({ Name: `tag:${TAGS.replica}`, Values: [replicaId] });
export const byInstanceIds = (ids: string[]): Filter => ({ Name: 'instance-id', Values: ids });
export const byService = (service: string): Filter => ({ Name: `tag:${TAGS.service}`, Values: [service] });
export const anyReplica = (): Filter => ({ Name: 'tag-key', Values: [TAGS.replica] });
export const inStates = (states: string[]): Filter => ({ Name: 'instance-state-name', Values: states });

/** A tag's value on an instance. */
export function tagOf(tags: Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}

/** What a replica id says of itself: `<service>-v<version>-r<n>` (the workflows make every id so). */
export function replicaIdParts(replicaId: string): { service: string; version: number } | undefined {
  const m = /^(.+)-v(\d+)-r\d+$/.exec(replicaId);
  return m ? { service: m[1], version: Number(m[2]) } : undefined;
}

/** The filters for a replica's own instances: its id, and the service the id names (a stray tagged for another service with the same id is not it). */
export function replicaFilters(replicaId: string): Filter[] {
  const parts = replicaIdParts(replicaId);
  return parts ? [byReplica(replicaId), byService(parts.service)] : [byReplica(replicaId)];
}

/** The fingerprint of what a launch runs (TAGS.spec): 16 hex digits of a SHA-256. */
export function specFingerprint(what: { run: string; env: Record<string, string>; resources: unknown; gpus: number }): string {
  const env = Object.fromEntries(Object.entries(what.env).sort(([a], [b]) => a.localeCompare(b)));
  return crypto.createHash('sha256').update(JSON.stringify({ run: what.run, env, resources: what.resources ?? null, gpus: what.gpus })).digest('hex').slice(0, 16);
}

/** Whether an instance's tags agree with its replica id (service and version): else it is a stray, whatever its id. */
export function tagsAgree(tags: Tag[] | undefined): boolean {
  const id = tagOf(tags, TAGS.replica);
  const parts = id ? replicaIdParts(id) : undefined;
  return !!parts && parts.service === tagOf(tags, TAGS.service) && String(parts.version) === tagOf(tags, TAGS.version);
}
