/**
 * Where the router's data plane lives: the Rust binary built from native/router by
 * `npm run setup` (cargo build --release). ROLLOUT_ROUTER_BIN points at another build.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The package root: dist/router/ or src/router/ are two levels below it. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');

export const ROUTER_BINARY_DEFAULT = path.join(PACKAGE_ROOT, 'native', 'router', 'target', 'release', 'rollout-router');

export class RouterBinaryMissingError extends Error {
  override name = 'RouterBinaryMissingError';
}

export function routerBinary(env: NodeJS.ProcessEnv = process.env): string {
  const binary = env.ROLLOUT_ROUTER_BIN || ROUTER_BINARY_DEFAULT;
  if (!fs.existsSync(binary)) {
    throw new RouterBinaryMissingError(
      env.ROLLOUT_ROUTER_BIN
        ? `ROLLOUT_ROUTER_BIN=${binary} does not exist`
        : `the router is not built (${path.relative(process.cwd(), binary) || binary} is missing): run \`npm run setup\`, which builds it with cargo (Rust toolchain from rustup.rs)`,
    );
  }
  return binary;
}
