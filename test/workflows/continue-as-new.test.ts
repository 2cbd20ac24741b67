/**
 * The service workflow continues as new when Temporal suggests it, keeping its state.
 * Real dev server with the suggestion threshold lowered to a few dozen events.
 */
import { WithStartWorkflowOperation } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { ServiceSpec } from '../../src/spec/types';
import { deployUpdate, serviceStatusQuery } from '../../src/workflows/messages';
import { serviceWorkflowId } from '../../src/workflows/types';
import { serviceSettled } from '../../src/cli/commands/deploy';
import { fakeWorld } from '../helpers/fake-activities';
import { createLocalEnv, workflowBundle } from '../helpers/temporal-env';
import { serviceSpec } from '../helpers/workflow-harness';

let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await createLocalEnv(['--dynamic-config-value', 'limit.historyCount.suggestContinueAsNew=40']);
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

const spec = (version: string): ServiceSpec => serviceSpec({ name: 'can', replicas: 1, version });

test('after many deploys the service workflow has continued as new, with its version, replicas and history', async () => {
  const world = fakeWorld();
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: 'can', workflowBundle: await workflowBundle(), activities: world.activities });
  await worker.runUntil(async () => {
    const first = await env.client.workflow.start('serviceWorkflow', { workflowId: serviceWorkflowId('can'), taskQueue: 'can', args: [{ name: 'can' }] });
    for (let v = 1; v <= 6; v++) {
      const d = await env.client.workflow.executeUpdateWithStart(deployUpdate, {
        args: [{ spec: spec(`v${v}`) }],
        startWorkflowOperation: new WithStartWorkflowOperation('serviceWorkflow', {
          workflowId: serviceWorkflowId('can'),
          taskQueue: 'can',
          args: [{ name: 'can' }],
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      });
      expect(d.version).toBe(v);
      const rolloutId = d.rolloutWorkflowId ?? fail(`v${v} started no rollout: ${d.reason}`);
      await env.client.workflow.getHandle(rolloutId).result();
      await serviceSettled(env.client.workflow.getHandle(serviceWorkflowId('can')), rolloutId);
    }
    const latest = env.client.workflow.getHandle(serviceWorkflowId('can'));
    const description = await latest.describe();
    expect(description.runId).not.toBe(first.firstExecutionRunId);
    const status = await latest.query(serviceStatusQuery);
    expect(status.version).toBe(6);
    expect(status.replicas.map((r) => `${r.version}:${r.status}`)).toEqual(['6:READY']);
    expect(status.lastRollout).toMatchObject({ version: 6, outcome: 'succeeded' });
    expect(world.running.size).toBe(1);
  });
}, 120_000);

function fail(message: string): never {
  throw new Error(message);
}
