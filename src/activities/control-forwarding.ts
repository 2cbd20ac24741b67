/**
 * The service workflow's `control` update forwards to its active rollout through this
 * activity: a workflow cannot call another workflow's update itself, an activity with a
 * Temporal client can. A refusal by the rollout's validator comes back as a non-retryable
 * `ControlRefused` failure carrying the rollout's own message.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { type Client, isGrpcServiceError, WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { controlUpdate } from '../workflows/messages';
import type { ControlRequest, RolloutStatus } from '../workflows/types';

export interface ControlRolloutInput {
  workflowId: string;
  request: ControlRequest;
}

export const CONTROL_REFUSED = 'ControlRefused';

/** gRPC status 5: what the server answers an update to a workflow that has closed. */
const GRPC_NOT_FOUND = 5;

export function createControlForwarding(client: Client | undefined) {
  return {
    /** Whether the service's workflow runs now (for a gc of a service that had none when the gc began). */
    async serviceWorkflowRunning(input: { workflowId: string }): Promise<boolean> {
      if (!client) throw ApplicationFailure.create({ type: 'ProviderNotConfigured', message: 'this worker has no Temporal client to look the service up with', nonRetryable: true });
      try {
        return (await client.workflow.getHandle(input.workflowId).describe()).status.name === 'RUNNING';
      } catch (err) {
        if (err instanceof WorkflowNotFoundError || (isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND)) return false;
        throw err;
      }
    },

    async controlRollout(input: ControlRolloutInput): Promise<RolloutStatus> {
      if (!client) {
        throw ApplicationFailure.create({ type: 'ProviderNotConfigured', message: 'this worker has no Temporal client to forward control updates with', nonRetryable: true });
      }
      try {
        // One update id for every attempt of this activity: a retry after a worker crash gets the
        // first attempt's answer from the server instead of a second rollback (refused: "already
        // rolling back") or a second advance (one step too far).
        const { workflowExecution, activityId } = Context.current().info;
        const updateId = `${workflowExecution?.workflowId}/${workflowExecution?.runId}/${activityId}`;
        return await client.workflow.getHandle(input.workflowId).executeUpdate(controlUpdate, { args: [input.request], updateId });
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError) {
          const message = err.cause instanceof Error ? err.cause.message : err.message;
          throw ApplicationFailure.create({ type: CONTROL_REFUSED, message, nonRetryable: true });
        }
        // The rollout closed (it finished just as the message came, or was terminated): no retry
        // can reach it, and the service learns of its end on its own.
        if (err instanceof WorkflowNotFoundError || (isGrpcServiceError(err) && err.code === GRPC_NOT_FOUND)) {
          throw ApplicationFailure.create({ type: CONTROL_REFUSED, message: `rollout ${input.workflowId} has ended`, nonRetryable: true });
        }
        throw err;
      }
    },
  };
}
