/**
 * Replicas a provider holds for a service that nobody owns any more: what a rollout sweeps when
 * it ends (its target version's replicas it no longer remembers, e.g. an instance whose launch
 * result was lost in a crash) and what `rollout gc` finds and terminates. Found by the
 * provider's own listing (EC2: by tag), never from the workflow's memory alone.
 *
 * Two activities, so that the caller decides in between: `findStrayReplicas` lists; the workflow
 * drops whatever it has come to own meanwhile (a replica it launched after the listing began is
 * in its records before its launch activity starts); `terminateStrayReplicas` terminates the rest.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Provider } from '../providers/types';
import { ProviderError } from '../providers/types';
import { heartbeatingWhile } from './heartbeat';

export interface FindStrayReplicasInput {
  service: string;
  /** Replica ids that are owned: never strays, whatever their version. */
  keepReplicaIds: string[];
  /** Only replicas of these versions (by the provider's record or tag); absent: any version. */
  versions?: number[];
  /** Only these providers; absent: every provider this worker has. */
  providers?: string[];
}

export interface StrayReplica {
  provider: string;
  /** '' for an instance tagged for the service without a replica tag. */
  replicaId: string;
  /** null: its version tag is missing or not a version. */
  version: number | null;
  /** The provider's state: running, exited (a record or a stopped instance left behind). */
  state: string;
  /** Pid locally, instance id on AWS. */
  externalId: string;
}

export interface TerminateStrayReplicasInput {
  /** Absent in activities scheduled before the field: then each is terminated by replica id. */
  service?: string;
  replicas: Pick<StrayReplica, 'provider' | 'replicaId' | 'externalId'>[];
}

export function createStrayReplicaActivities(providers: Record<string, Provider>) {
  const chosen = (names: string[] | undefined): [string, Provider][] =>
    Object.entries(providers).filter(([name]) => names === undefined || names.includes(name));
  return {
    async findStrayReplicas(input: FindStrayReplicasInput): Promise<StrayReplica[]> {
      const keep = new Set(input.keepReplicaIds);
      const versions = input.versions ? new Set(input.versions) : undefined;
      const out: StrayReplica[] = [];
      for (const [name, provider] of chosen(input.providers)) {
        const inVersions = (v: number | null) => !versions || (v !== null && versions.has(v));
        try {
          if (provider.listHeld) {
            // One entry per instance, by the provider's tags: those with no replica tag, junk tags,
            // or a second instance of an owned id are strays too.
            for (const h of await heartbeatingWhile(() => provider.listHeld!(input.service))) {
              if ((h.replicaId && keep.has(h.replicaId) && !h.stray) || !inVersions(h.version)) continue;
              out.push({ provider: name, replicaId: h.replicaId, version: h.version, state: h.state, externalId: h.externalId });
            }
            continue;
          }
          for (const r of await heartbeatingWhile(() => provider.list(input.service))) {
            if (r.state === 'missing' || keep.has(r.replicaId) || r.service !== input.service || !inVersions(r.version)) continue;
            out.push({ provider: name, replicaId: r.replicaId, version: r.version, state: r.state, externalId: r.externalId });
          }
        } catch (err) {
          throw asFailure(err, `listing ${input.service}'s replicas on ${name}`);
        }
      }
      return out.sort((a, b) => a.replicaId.localeCompare(b.replicaId) || a.externalId.localeCompare(b.externalId));
    },

    /** Terminates each (idempotent: one that is gone already is fine); heartbeats throughout. */
    async terminateStrayReplicas(input: TerminateStrayReplicasInput): Promise<{ terminated: string[] }> {
      const terminated: string[] = [];
      await heartbeatingWhile(
        async () => {
          for (const [name, group] of groupBy(input.replicas, (r) => r.provider)) {
            const provider = providers[name];
            if (!provider) throw ApplicationFailure.create({ type: 'ProviderNotConfigured', message: `provider "${name}" is not configured on this worker`, nonRetryable: true });
            try {
              // By instance, within the service: a stray tagged with another service's replica id
              // must not take that service's replica with it.
              if (provider.terminateHeld && input.service !== undefined) await provider.terminateHeld(input.service, group.map((r) => r.externalId));
              else for (const r of group) await provider.terminate(r.replicaId);
            } catch (err) {
              throw asFailure(err, `terminating ${group.map((r) => r.replicaId || r.externalId).join(', ')} on ${name}`);
            }
            terminated.push(...group.map((r) => r.replicaId || r.externalId));
          }
        },
        () => ({ terminated: terminated.length }),
      );
      return { terminated };
    },
  };
}

function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) out.set(key(item), [...(out.get(key(item)) ?? []), item]);
  return out;
}

function asFailure(err: unknown, what: string): unknown {
  if (err instanceof ProviderError) return ApplicationFailure.create({ type: err.type, message: `${what}: ${err.message}`, nonRetryable: !err.retryable });
  return err;
}
