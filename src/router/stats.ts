/** Per-service, per-version request counters and per-replica in-flight counts. */
export interface VersionStats {
  requests: number;
  errors5xx: number;
  connectErrors: number;
  inflight: number;
}

export class RouterStats {
  private readonly versions = new Map<string, Map<number, VersionStats>>();
  private readonly inflightByReplica = new Map<string, Map<string, number>>();

  private entry(service: string, version: number): VersionStats {
    let byVersion = this.versions.get(service);
    if (!byVersion) this.versions.set(service, (byVersion = new Map()));
    let stats = byVersion.get(version);
    if (!stats) byVersion.set(version, (stats = { requests: 0, errors5xx: 0, connectErrors: 0, inflight: 0 }));
    return stats;
  }

  started(service: string, version: number, replicaId: string): void {
    this.entry(service, version).inflight += 1;
    let byReplica = this.inflightByReplica.get(service);
    if (!byReplica) this.inflightByReplica.set(service, (byReplica = new Map()));
    byReplica.set(replicaId, (byReplica.get(replicaId) ?? 0) + 1);
  }

  finished(service: string, version: number, replicaId: string, status: number | 'connect-error'): void {
    const stats = this.entry(service, version);
    stats.inflight -= 1;
    stats.requests += 1;
    if (status === 'connect-error') stats.connectErrors += 1;
    else if (status >= 500) stats.errors5xx += 1;
    const byReplica = this.inflightByReplica.get(service);
    const left = (byReplica?.get(replicaId) ?? 1) - 1;
    if (left <= 0) byReplica?.delete(replicaId);
    else byReplica?.set(replicaId, left);
  }

  inflight(service: string, replicaId?: string): number {
    const byReplica = this.inflightByReplica.get(service);
    if (!byReplica) return 0;
    if (replicaId) return byReplica.get(replicaId) ?? 0;
    return [...byReplica.values()].reduce((a, b) => a + b, 0);
  }

  inflightByReplicaOf(service: string): Record<string, number> {
    return Object.fromEntries(this.inflightByReplica.get(service) ?? []);
  }

  byVersion(service: string): Record<string, VersionStats> {
    return Object.fromEntries([...(this.versions.get(service) ?? new Map<number, VersionStats>())].map(([v, s]) => [String(v), { ...s }]));
  }
}
