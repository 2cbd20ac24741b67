#!/usr/bin/env node
// The `rollout` command: runs the compiled CLI (built by `npm install`/`npm run build`).
require('../dist/cli/main.js').buildProgram().parseAsync(process.argv);
