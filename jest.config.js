/** Jest runs TypeScript through swc; suites that start servers run in band (see package.json). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // test/cluster (the real Temporal server on PostgreSQL) runs on its own: `npm run test:cluster`.
  testPathIgnorePatterns: ['/node_modules/', ...(process.env.ROLLOUT_CLUSTER_TEST === '1' ? [] : ['<rootDir>/test/cluster/'])],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022' } }] },
  testTimeout: 120000,
  // A suite that leaves a server handle open must not keep CI waiting until its time limit.
  forceExit: true,
};
