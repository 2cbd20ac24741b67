import fs from 'node:fs';
import path from 'node:path';

/** The folder holding this package's package.json (works from src/ under Jest and from dist/). */
export function projectRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'gpu-rollout') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the gpu-rollout package root above ${__dirname}`);
    dir = parent;
  }
}
