/**
 * Real Temporal servers for tests: the time-skipping test server (workflow tests with long
 * timers) and the CLI dev server, both from the project virtualenv (never mocked).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { resolveBinary, TEMPORAL_CLI, TEMPORAL_TEST_SERVER } from '../../src/temporal/binaries';
import { ROLLOUT_SEARCH_ATTRIBUTES } from '../../src/workflows/search-attributes';
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

/**
 * The search attributes every time-skipping server gets (all of the rollout's). That server has
 * no start option for them, but takes OperatorService.addSearchAttributes, and like a real one
 * fails the workflow task of an upsert of one it lacks; it cannot list them (UNIMPLEMENTED), so
 * the fake worker answers the service's question with these (test/helpers/fake-activities.ts).
 */
export const TIME_SKIPPING_SEARCH_ATTRIBUTES: readonly string[] = ROLLOUT_SEARCH_ATTRIBUTES.map((key) => key.name);

// Ports from freePort (see ports.ts), not the SDK's own pick from the ephemeral range.
export async function createTimeSkippingEnv(searchAttributeNames: readonly string[] = TIME_SKIPPING_SEARCH_ATTRIBUTES): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: executable(resolveBinary(TEMPORAL_TEST_SERVER)), port: await freePort() } });
  const keys = ROLLOUT_SEARCH_ATTRIBUTES.filter((key) => searchAttributeNames.includes(key.name));
  if (keys.length === 0) return env;
  const searchAttributes = Object.fromEntries(keys.map((key) => [key.name, encodeSearchAttributeIndexedValueType(key.type)!]));
  await env.connection.operatorService.addSearchAttributes({ namespace: env.namespace ?? 'default', searchAttributes });
  return env;
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
