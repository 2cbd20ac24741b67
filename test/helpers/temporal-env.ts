/**
 * Real Temporal servers for tests: the time-skipping test server (workflow tests with long
 * timers) and the CLI dev server, both from the project virtualenv (never mocked).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { resolveBinary, TEMPORAL_CLI, TEMPORAL_TEST_SERVER } from '../../src/temporal/binaries';
import { freePort } from './ports';

/** A binary found locally, or the SDK's own download (the last resort; needs internet). */
function executable(path: string | undefined) {
  return path ? { type: 'existing-path' as const, path } : { type: 'cached-download' as const };
}

// The fakes retry on purpose ("still loading", "still healthy"): a warning per retry is noise.
// Errors still show. Installed once per test file, before any worker or connection exists.
try {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
} catch {
  // already installed in this module registry
}

// Ports from freePort (see ports.ts), not the SDK's own pick from the ephemeral range.
export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createTimeSkipping({ server: { executable: executable(resolveBinary(TEMPORAL_TEST_SERVER)), port: await freePort() } });
}

/**
 * A time-skipping server of its own for every test of the calling file (`beforeEach`/`afterEach`),
 * handed to `use`. What one test leaves behind (a service still watching its replicas, an
 * activity waiting to retry on a task queue whose worker is gone) would otherwise keep the
 * server from skipping time in the tests after it.
 */
export function timeSkippingServerPerTest(use: (env: TestWorkflowEnvironment) => void): void {
  let current: TestWorkflowEnvironment | undefined;
  beforeEach(async () => {
    current = await createTimeSkippingEnv();
    use(current);
  }, 120_000);
  afterEach(async () => {
    await current?.teardown();
  });
}

/** The real dev server (in memory, no UI); `extraArgs` go to `temporal server start-dev`. */
export async function createLocalEnv(extraArgs: string[] = []): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({ server: { executable: executable(resolveBinary(TEMPORAL_CLI)), ui: false, port: await freePort(), extraArgs } });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflow bundle, built once per test file (webpack is slow). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: quietLogger });
  return bundle;
}

const noop = (): void => undefined;
const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };
