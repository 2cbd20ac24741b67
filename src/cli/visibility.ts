/**
 * Finding workflows through Temporal's visibility API (List Workflow Executions), by workflow
 * type and id only: these queries need no custom search attribute, so they work on a namespace
 * whatever it has registered (the Rollout* attributes are for people filtering in the UI).
 */
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { decodeArrayFromPayloads } from '@temporalio/common/lib/internal-non-workflow';
import { serviceWorkflowId } from '../workflows/types';

/** The workflow type names, as registered by the worker (src/workflows/index.ts). */
export const SERVICE_WORKFLOW_TYPE = 'serviceWorkflow';
export const ROLLOUT_WORKFLOW_TYPE = 'rolloutWorkflow';

/** Every running service workflow's service name, sorted. */
export async function runningServices(client: Client): Promise<string[]> {
  const names = new Set<string>();
  const prefix = serviceWorkflowId('');
  for await (const wf of client.workflow.list({ query: `WorkflowType = "${SERVICE_WORKFLOW_TYPE}" AND ExecutionStatus = "Running"` })) {
    if (wf.workflowId.startsWith(prefix)) names.add(wf.workflowId.slice(prefix.length));
  }
  return [...names].sort();
}

/** The version in `rollout-<service>-v<N>`, or undefined when the id is another service's (`rollout-a-v2-v1` is not `a`'s). */
export function rolloutVersionOf(service: string, workflowId: string): number | undefined {
  const prefix = `rollout-${service}-v`;
  if (!workflowId.startsWith(prefix)) return undefined;
  const rest = workflowId.slice(prefix.length);
  return /^[1-9]\d*$/.test(rest) ? Number(rest) : undefined;
}

/** One rollout: all runs of its workflow id (more than one after a long hold continued as new), oldest first. */
export interface RolloutRuns {
  workflowId: string;
  version: number;
  runs: WorkflowExecutionInfo[];
}

/**
 * Every rollout of `service`, newest version first. Listed by id prefix and type, then filtered
 * exactly by parsing the id: a prefix alone would take in the rollouts of a service named
 * `<service>-v2`.
 */
export async function rolloutsOf(client: Client, service: string): Promise<RolloutRuns[]> {
  const byId = new Map<string, RolloutRuns>();
  const query = `WorkflowType = "${ROLLOUT_WORKFLOW_TYPE}" AND WorkflowId STARTS_WITH "rollout-${service}-v"`;
  for await (const wf of client.workflow.list({ query })) {
    const version = rolloutVersionOf(service, wf.workflowId);
    if (version === undefined) continue;
    const entry = byId.get(wf.workflowId) ?? { workflowId: wf.workflowId, version, runs: [] };
    entry.runs.push(wf);
    byId.set(wf.workflowId, entry);
  }
  for (const entry of byId.values()) entry.runs.sort((a, b) => a.startTime.getTime() - b.startTime.getTime());
  return [...byId.values()].sort((a, b) => b.version - a.version);
}

/** The input a workflow run was started with (its first history event), decoded. */
export async function startInput<T>(client: Client, workflowId: string, runId: string): Promise<T | undefined> {
  const res = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution: { workflowId, runId },
    maximumPageSize: 1,
  });
  const payloads = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
  if (!payloads) return undefined;
  const [input] = await decodeArrayFromPayloads(client.workflow.options.loadedDataConverter, payloads);
  return input as T;
}
