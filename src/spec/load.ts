/** Reading a spec from YAML: every problem comes back with its field path and what was expected. */
import fs from 'node:fs/promises';
import YAML from 'yaml';
import type { z } from 'zod';
import { serviceSpecSchema } from './schema';
import type { ServiceSpec, SpecIssue } from './types';

export type SpecResult = { ok: true; spec: ServiceSpec } | { ok: false; issues: SpecIssue[] };

export class SpecValidationError extends Error {
  constructor(readonly issues: SpecIssue[]) {
    super(`invalid spec:\n${formatIssues(issues)}`);
  }
}

export function parseSpec(yamlText: string): SpecResult {
  const doc = YAML.parseDocument(yamlText, { prettyErrors: true });
  if (doc.errors.length > 0) {
    return { ok: false, issues: doc.errors.map((e) => ({ path: '(yaml)', message: e.message.split('\n')[0] })) };
  }
  return validateSpec(doc.toJS());
}

export function validateSpec(value: unknown): SpecResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, issues: [{ path: '(root)', message: `expected a mapping of fields (name, replicas, run, …), got ${JSON.stringify(value ?? null)}` }] };
  }
  const parsed = serviceSpecSchema.safeParse(value);
  if (parsed.success) return { ok: true, spec: parsed.data };
  return { ok: false, issues: parsed.error.issues.flatMap(toIssues) };
}

function toIssues(issue: z.core.$ZodIssue): SpecIssue[] {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: path ? `${path}.${key}` : key, message: 'unknown field' }));
  }
  return [{ path: path || '(root)', message: issue.message }];
}

export async function loadSpecFile(file: string): Promise<SpecResult> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, issues: [{ path: '(file)', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }] };
  }
  return parseSpec(text);
}

/** One line per issue: `  rollout.max_surge: expected …`. */
export function formatIssues(issues: SpecIssue[]): string {
  return issues.map((i) => `  ${i.path}: ${i.message}`).join('\n');
}
