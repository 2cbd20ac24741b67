/**
 * Workflow `gc-<service>`: `rollout gc` for a service with no running service workflow (nothing
 * owns its replicas, so every replica the providers hold for it is a stray). A running service
 * answers its own `gc` update instead, so that what it owns is decided where it is known.
 */
import type { GcInput, GcResult } from './types';
import { collectGarbageOfGone } from './service-gc';

export async function gcWorkflow(service: string, input: GcInput): Promise<GcResult> {
  return collectGarbageOfGone(service, input);
}
