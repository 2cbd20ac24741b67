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
      this.table = JSON.parse(fs.readFileSync(statePath, 'utf8')) as RouteTable;
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

  picker(service: string): WeightedPicker {
    let picker = this.pickers.get(service);
    if (!picker) {
      picker = new WeightedPicker(this.backends(service));
      this.pickers.set(service, picker);
    }
    return picker;
  }

  /** Replaces a service's backends at once; requests in flight keep the backend they have. */
  set(service: string, backends: Backend[]): void {
    this.table = { services: { ...this.table.services, [service]: { backends } } };
    this.pickers.delete(service);
    this.persist();
  }

  remove(service: string): void {
    const services = { ...this.table.services };
    delete services[service];
    this.table = { services };
    this.pickers.delete(service);
    this.persist();
  }

  private persist(): void {
    if (!this.statePath) return;
    fs.mkdirSync(path.dirname(this.statePath), { recursive: true });
    const tmp = `${this.statePath}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(this.table, null, 2));
    fs.renameSync(tmp, this.statePath);
  }
}
