/** The routing table, persisted atomically (temp file + rename) so a restart resumes the same split. */
import fs from 'node:fs';
import path from 'node:path';
import type { Backend, RouteTable } from './types';
import { WeightedPicker } from './weighted-picker';

export class RouteStore {
  private table: RouteTable = { services: {} };
  private pickers = new Map<string, WeightedPicker>();

  constructor(private readonly statePath?: string) {
    if (statePath && fs.existsSync(statePath)) {
      // A table we cannot read must stop the router: starting empty would send every service 404.
      let loaded: RouteTable;
      try {
        loaded = JSON.parse(fs.readFileSync(statePath, 'utf8')) as RouteTable;
      } catch (err) {
        throw new Error(`router state ${statePath} is unreadable (${(err as Error).message}); fix or delete it`);
      }
      if (!loaded || typeof loaded.services !== 'object' || loaded.services === null) {
        throw new Error(`router state ${statePath} has no "services" object; fix or delete it`);
      }
      this.table = loaded;
    }
  }

  has(service: string): boolean {
    return service in this.table.services;
  }

  backends(service: string): Backend[] {
    return this.table.services[service]?.backends ?? [];
  }

  all(): RouteTable {
    return this.table;
  }

  /** The picker over a service's backends, or over one version's only (version pinning). */
  picker(service: string, version?: number): WeightedPicker {
    const key = version === undefined ? service : `${service}\u0000${version}`;
    let picker = this.pickers.get(key);
    if (!picker) {
      const backends = this.backends(service).filter((b) => version === undefined || b.version === version);
      picker = new WeightedPicker(backends);
      this.pickers.set(key, picker);
    }
    return picker;
  }

  /** Versions that receive traffic, oldest first: the first is the primary, the last the canary. */
  servingVersions(service: string): number[] {
    return [...new Set(this.backends(service).filter((b) => b.weight > 0).map((b) => b.version))].sort((a, b) => a - b);
  }

  /** Replaces a service's backends at once; requests in flight keep the backend they have. */
  set(service: string, backends: Backend[]): void {
    this.table = { services: { ...this.table.services, [service]: { backends } } };
    this.dropPickers(service);
    this.persist();
  }

  remove(service: string): void {
    const services = { ...this.table.services };
    delete services[service];
    this.table = { services };
    this.dropPickers(service);
    this.persist();
  }

  private dropPickers(service: string): void {
    for (const key of this.pickers.keys()) if (key === service || key.startsWith(`${service}\u0000`)) this.pickers.delete(key);
  }

  private persist(): void {
    if (!this.statePath) return;
    fs.mkdirSync(path.dirname(this.statePath), { recursive: true });
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.table, null, 2));
    fs.renameSync(tmp, this.statePath);
  }
}
