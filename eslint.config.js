// ESLint: typescript-eslint's recommended rules, plus the determinism rules Temporal asks of
// workflow code (src/workflows) and the purity rules of the planner (src/plan).
const tseslint = require('typescript-eslint');

const nodeBuiltins = ['fs', 'path', 'os', 'child_process', 'net', 'http', 'https', 'crypto', 'dns', 'worker_threads', 'process'];
const sideEffectImports = {
  patterns: [
    { group: ['node:*', ...nodeBuiltins], message: 'workflow and planner code must not do I/O: use an activity' },
    { group: ['@temporalio/activity', '@temporalio/client', '@temporalio/worker', 'undici', 'pino'], message: 'not allowed in deterministic code' },
    { group: ['**/activities', '**/activities/*', '!**/activities/types'], message: 'import activities as types only', allowTypeImports: true },
    { group: ['**/providers/*', '**/router/*', '!**/router/types', '!**/providers/types'], message: 'side-effecting layers are reached through activities', allowTypeImports: true },
  ],
};

module.exports = tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.venv/**', 'coverage/**', 'bench/results/**', '.tmp/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', sideEffectImports],
      'no-restricted-globals': ['error', { name: 'process', message: 'no process access in workflows' }, { name: 'fetch', message: 'use an activity' }],
    },
  },
  {
    files: ['src/plan/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [...sideEffectImports.patterns, { group: ['@temporalio/*', 'zod'], message: 'the planner is pure: no Temporal, no zod' }] }],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'the planner has no clock' },
        { object: 'Math', property: 'random', message: 'the planner is deterministic' },
      ],
      'no-restricted-globals': ['error', 'process', 'fetch', 'setTimeout', 'setInterval'],
    },
  },
  {
    files: ['**/*.js'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
