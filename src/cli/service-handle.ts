/** Finds a service's workflow, turning "not found" into a clear CLI error. */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/client';
import { serviceStatusQuery } from '../workflows/messages';
import type { ServiceStatus } from '../workflows/types';
import { serviceWorkflowId } from '../workflows/types';
import { CliError, ExitCode } from './errors';

/** No workflow for the service at all (never deployed, or its history is gone): exit 1. */
export class ServiceNotFoundError extends CliError {}

export async function serviceStatus(client: Client, service: string): Promise<{ handle: WorkflowHandle; status: ServiceStatus }> {
  const handle = client.workflow.getHandle(serviceWorkflowId(service));
  try {
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') {
      throw new CliError(`service ${service} is not running (its workflow is ${description.status.name})`, ExitCode.failed);
    }
    return { handle, status: await handle.query(serviceStatusQuery) };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) {
      throw new ServiceNotFoundError(`no service named "${service}" (no workflow ${serviceWorkflowId(service)}); deploy it with \`rollout deploy <spec.yaml>\``, ExitCode.failed);
    }
    throw err;
  }
}

/** Whether the service's workflow exists and runs (deploy's canary check, gc's choice of path). */
export async function serviceRunning(client: Client, service: string): Promise<boolean> {
  return workflowRunning(client, serviceWorkflowId(service));
}

/** Whether a workflow with this id exists and runs. */
export async function workflowRunning(client: Client, workflowId: string): Promise<boolean> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}
