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
  replicaId: string;
  version: number;
  /** The provider's state: running, exited (a record or a stopped instance left behind). */
  state: string;
  /** Pid locally, instance id on AWS. */
  externalId: string;
}

export interface TerminateStrayReplicasInput {
  replicas: Pick<StrayReplica, 'provider' | 'replicaId'>[];
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
        let listed;
        try {
          listed = await heartbeatingWhile(() => provider.list(input.service));
        } catch (err) {
          throw asFailure(err, `listing ${input.service}'s replicas on ${name}`);
        }
        for (const r of listed) {
          if (r.state === 'missing' || keep.has(r.replicaId) || r.service !== input.service) continue;
          if (versions && !versions.has(r.version)) continue;
          out.push({ provider: name, replicaId: r.replicaId, version: r.version, state: r.state, externalId: r.externalId });
        }
      }
      return out.sort((a, b) => a.replicaId.localeCompare(b.replicaId));
    },

    /** Terminates each (idempotent: one that is gone already is fine); heartbeats throughout. */
    async terminateStrayReplicas(input: TerminateStrayReplicasInput): Promise<{ terminated: string[] }> {
      const terminated: string[] = [];
      await heartbeatingWhile(
        async () => {
          for (const r of input.replicas) {
            const provider = providers[r.provider];
            if (!provider) throw ApplicationFailure.create({ type: 'ProviderNotConfigured', message: `provider "${r.provider}" is not configured on this worker`, nonRetryable: true });
            try {
              await provider.terminate(r.replicaId);
            } catch (err) {
              throw asFailure(err, `terminating ${r.replicaId} on ${r.provider}`);
            }
            terminated.push(r.replicaId);
          }
        },
        () => ({ terminated: terminated.length }),
      );
      return { terminated };
    },
  };
}

function asFailure(err: unknown, what: string): unknown {
  if (err instanceof ProviderError) return ApplicationFailure.create({ type: err.type, message: `${what}: ${err.message}`, nonRetryable: !err.retryable });
  return err;
}
