/**
 * Real Temporal servers for tests: the time-skipping test server (workflow tests with long
 * timers) and the CLI dev server, both from the project virtualenv (never mocked).
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { resolveBinary, TEMPORAL_CLI, TEMPORAL_TEST_SERVER } from '../../src/temporal/binaries';

function required(path: string | undefined, what: string): string {
  if (!path) throw new Error(`${what} not found; run \`npm run setup\``);
  return path;
}

export async function createTimeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  const path = required(resolveBinary(TEMPORAL_TEST_SERVER), 'temporal-test-server');
  return TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path } } });
}

/** The real dev server (in memory, no UI); `extraArgs` go to `temporal server start-dev`. */
export async function createLocalEnv(extraArgs: string[] = []): Promise<TestWorkflowEnvironment> {
  const path = required(resolveBinary(TEMPORAL_CLI), 'temporal CLI');
  return TestWorkflowEnvironment.createLocal({ server: { executable: { type: 'existing-path', path }, ui: false, extraArgs } });
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** The workflow bundle, built once per test file (webpack is slow). */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../src/workflows'), logger: quietLogger });
  return bundle;
}

const noop = (): void => undefined;
const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };
