/**
 * The GPU catalog (catalog.json): which instance types serve `resources.accelerators`, in the
 * order they are tried, with their hardware and on-demand price. Pure data access.
 *
 *   instanceTypesFor('L4', 1)    → ['g6.xlarge', 'g6.2xlarge', 'g6.4xlarge']
 *   instanceTypesFor('a10g', 4)  → ['g5.12xlarge', 'g5.24xlarge']   (names are case-insensitive)
 *   instanceTypesFor('A10G', 2)  → throws: "no EC2 instance type in the catalog has exactly 2 × A10G (there are: A10G:1, A10G:4, A10G:8) …"
 */
import data from './catalog.json';

export interface CatalogInstanceType {
  accelerator: string;
  gpus: number;
  /** Per GPU, as DescribeInstanceTypes reports it. */
  gpu_memory_mib: number;
  vcpus: number;
  memory_mib: number;
  /** On-demand, Linux, in the catalog's region; null where the price is not known with confidence. */
  on_demand_usd_per_hour: number | null;
  price_note?: string;
}

export interface Catalog {
  region: string;
  prices_as_of: string;
  instance_types: Record<string, CatalogInstanceType>;
  /** `NAME:COUNT` → instance types, first tried first. */
  choices: Record<string, string[]>;
}

export const CATALOG: Catalog = data;

/** A request the catalog has no row for: says which counts exist. */
export class CatalogMissError extends Error {}

/** Instance types for `count` × `accelerator`, first choice first. */
export function instanceTypesFor(accelerator: string, count: number, catalog: Catalog = CATALOG): string[] {
  const name = accelerator.toUpperCase();
  const key = Object.keys(catalog.choices).find((k) => k.toUpperCase() === `${name}:${count}`);
  if (key) return [...catalog.choices[key]];
  const same = Object.keys(catalog.choices).filter((k) => k.split(':')[0].toUpperCase() === name);
  const why = same.length
    ? `no EC2 instance type in the catalog has exactly ${count} × ${accelerator} (there are: ${same.join(', ')})`
    : `the catalog has no EC2 instance type with ${accelerator} GPUs (it knows ${[...new Set(Object.keys(catalog.choices).map((k) => k.split(':')[0]))].join(', ')})`;
  throw new CatalogMissError(`${why}; set resources.instance_type to choose one yourself`);
}

/** What the catalog knows of a type, if anything. */
export function catalogEntry(instanceType: string, catalog: Catalog = CATALOG): CatalogInstanceType | undefined {
  return Object.prototype.hasOwnProperty.call(catalog.instance_types, instanceType) ? catalog.instance_types[instanceType] : undefined;
}
