/**
 * Which environment variables a program of this repo really reads, found in its source: the
 * TypeScript files reachable by relative imports from an entry file (plus the packages named in
 * `packages`, e.g. @temporalio/envconfig, which reads the TEMPORAL_* variables for us), and Rust
 * files' `env("NAME")` calls. A read is `env.NAME`, `env['NAME']` (of `process.env` or an `env`
 * parameter) or a whole string literal that is a variable's name (`required('ROUTER_ADMIN_URL')`,
 * `AWS_CONFIG_ENV = 'ROLLOUT_AWS_CONFIG'`): names only mentioned inside a message do not count.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ROOT } from './compose-file';

const ENV_NAME = '[A-Z][A-Z0-9]*_[A-Z0-9_]+';

/** The files an entry file imports (relative imports, `import type` left out), transitively. */
export function importClosure(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = fs.readFileSync(file, 'utf8');
    const specifiers = [
      ...[...text.matchAll(/^\s*import\s+(?!type\b)[^;]*?from\s+'(\.{1,2}\/[^']+)'/gms)].map((m) => m[1]),
      ...[...text.matchAll(/^\s*export\s+(?!type\b)[^;]*?from\s+'(\.{1,2}\/[^']+)'/gms)].map((m) => m[1]),
      ...[...text.matchAll(/(?:import|require)\(\s*'(\.{1,2}\/[^']+)'\s*\)/g)].map((m) => m[1]),
    ];
    for (const spec of specifiers) {
      const base = path.resolve(path.dirname(file), spec);
      const resolved = [`${base}.ts`, path.join(base, 'index.ts'), base].find((p) => fs.existsSync(p) && fs.statSync(p).isFile());
      if (resolved && resolved.endsWith('.ts')) visit(resolved);
    }
  };
  visit(entry);
  return [...seen].sort();
}

/** Variable names read in one TypeScript or JavaScript text. */
export function envReadsIn(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(new RegExp(`\\benv\\.(${ENV_NAME})\\b`, 'g'))) names.add(m[1]);
  for (const m of text.matchAll(new RegExp(`\\benv\\[\\s*['"](${ENV_NAME})['"]\\s*\\]`, 'g'))) names.add(m[1]);
  for (const m of text.matchAll(new RegExp(`['"](${ENV_NAME})['"]`, 'g'))) names.add(m[1]);
  return names;
}

/**
 * Variable names a Rust source reads: whole string literals that are a name (`env("NAME")`,
 * `port("ROUTER_TRAFFIC_PORT", 8080)`, `millis("NAME", …)`), not names inside a message.
 */
export function rustEnvReadsIn(text: string): Set<string> {
  const names = new Set<string>();
  for (const m of text.matchAll(new RegExp(`"(${ENV_NAME})"`, 'g'))) names.add(m[1]);
  return names;
}

/** The names a Rust source treats as required: `env("NAME").ok_or(…)`. */
export function rustRequiredIn(text: string): Set<string> {
  return new Set([...text.matchAll(new RegExp(`\\benv\\(\\s*"(${ENV_NAME})"\\s*\\)\\s*\\.ok_or`, 'g'))].map((m) => m[1]));
}

/** Every name read by the TypeScript closure of `entry` and by the JavaScript of `packages`. */
export function envReadsOf(entry: string, packages: string[] = []): Set<string> {
  const names = new Set<string>();
  for (const file of importClosure(entry)) for (const n of envReadsIn(fs.readFileSync(file, 'utf8'))) names.add(n);
  for (const pkg of packages) {
    const dir = path.dirname(require.resolve(`${pkg}/package.json`, { paths: [ROOT] }));
    const lib = path.join(dir, 'lib');
    for (const file of fs.readdirSync(lib)) {
      if (file.endsWith('.js')) for (const n of envReadsIn(fs.readFileSync(path.join(lib, file), 'utf8'))) names.add(n);
    }
  }
  return names;
}
