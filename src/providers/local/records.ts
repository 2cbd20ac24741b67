/**
 * Replica records on disk: `<stateDir>/replicas/<replicaId>.json`, one per launched process.
 * They are the truth a restarted worker recovers from, so writes are atomic (tmp + rename)
 * and synchronous: the record of a spawned process lands before anything else can run.
 */
import fs from 'node:fs';
import path from 'node:path';

export interface LocalReplicaRecord {
  replicaId: string;
  service: string;
  version: number;
  pid: number;
  /** The replica runs in its own process group (detached): pgid = pid. */
  pgid: number;
  /** /proc/<pid>/stat field 22; null where /proc is missing. Detects pid reuse. */
  startTime: number | null;
  port: number;
  endpoint: string;
  gpuIds: number[];
  run: string;
  /** ISO time. */
  createdAt: string;
}

/**
 * Written just before a replica is spawned and removed once its record is: a launch cut short
 * in between (the worker killed) leaves this, and the next attempt looks for the process it
 * may have started (by its REPLICA_ID and PORT) instead of starting a second one.
 */
export interface LaunchIntent {
  replicaId: string;
  port: number;
  gpuIds: number[];
  createdAt: string;
}

/** Replica ids become file names: keep them to a safe alphabet. */
export const REPLICA_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export class ReplicaRecords {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  pathOf(replicaId: string): string {
    return path.join(this.dir, `${replicaId}.json`);
  }

  lockPathOf(replicaId: string): string {
    return path.join(this.dir, `${replicaId}.lock`);
  }

  private intentPathOf(replicaId: string): string {
    return path.join(this.dir, `${replicaId}.launching`);
  }

  writeIntentSync(intent: LaunchIntent): void {
    const target = this.intentPathOf(intent.replicaId);
    const tmp = `${target}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(intent));
    fs.renameSync(tmp, target);
  }

  readIntent(replicaId: string): LaunchIntent | undefined {
    try {
      const value = JSON.parse(fs.readFileSync(this.intentPathOf(replicaId), 'utf8')) as Partial<LaunchIntent>;
      if (typeof value.port !== 'number' || !Array.isArray(value.gpuIds)) return undefined;
      return { replicaId, port: value.port, gpuIds: value.gpuIds.filter((g) => Number.isInteger(g)), createdAt: String(value.createdAt) };
    } catch {
      return undefined; // None (the usual case), or not ours.
    }
  }

  removeIntent(replicaId: string): void {
    fs.rmSync(this.intentPathOf(replicaId), { force: true });
  }

  writeSync(record: LocalReplicaRecord): void {
    const target = this.pathOf(record.replicaId);
    const tmp = `${target}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(record, null, 2));
    fs.renameSync(tmp, target);
  }

  read(replicaId: string): LocalReplicaRecord | undefined {
    let text: string;
    try {
      text = fs.readFileSync(this.pathOf(replicaId), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return parseRecord(text);
  }

  remove(replicaId: string): void {
    fs.rmSync(this.pathOf(replicaId), { force: true });
  }

  all(): LocalReplicaRecord[] {
    const records: LocalReplicaRecord[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const record = this.read(name.slice(0, -'.json'.length));
      if (record) records.push(record);
    }
    return records.sort((a, b) => a.replicaId.localeCompare(b.replicaId));
  }
}

/** A record that is not what we wrote (hand-edited, foreign file) is ignored, not trusted. */
function parseRecord(text: string): LocalReplicaRecord | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = value as Partial<LocalReplicaRecord>;
  const ok =
    typeof r === 'object' &&
    r !== null &&
    typeof r.replicaId === 'string' &&
    typeof r.service === 'string' &&
    typeof r.version === 'number' &&
    Number.isInteger(r.pid) &&
    (r.pid as number) > 0 &&
    Number.isInteger(r.pgid) &&
    (r.pgid as number) > 0 &&
    (r.startTime === null || typeof r.startTime === 'number') &&
    typeof r.port === 'number' &&
    typeof r.endpoint === 'string' &&
    Array.isArray(r.gpuIds) &&
    typeof r.run === 'string' &&
    typeof r.createdAt === 'string';
  return ok ? (r as LocalReplicaRecord) : undefined;
}
