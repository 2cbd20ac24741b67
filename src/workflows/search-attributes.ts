/**
 * The search attributes that make rollouts findable in the Temporal UI and through the
 * visibility API (`rollout history`): one definition, read by the workflows (upserts), the
 * worker (checks that its namespace has them), `rollout dev` (registers them on its dev
 * server), docker-compose (its admin-tools job) and the tests that hold compose to the code.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const RolloutService = defineSearchAttributeKey('RolloutService', SearchAttributeType.KEYWORD);
export const RolloutVersion = defineSearchAttributeKey('RolloutVersion', SearchAttributeType.INT);
export const RolloutPhase = defineSearchAttributeKey('RolloutPhase', SearchAttributeType.KEYWORD);
export const RolloutStrategy = defineSearchAttributeKey('RolloutStrategy', SearchAttributeType.KEYWORD);
export const RolloutCanaryPercent = defineSearchAttributeKey('RolloutCanaryPercent', SearchAttributeType.INT);
export const RolloutOutcome = defineSearchAttributeKey('RolloutOutcome', SearchAttributeType.KEYWORD);

/** Every key, in the order the README lists them. */
export const ROLLOUT_SEARCH_ATTRIBUTES = [RolloutService, RolloutVersion, RolloutPhase, RolloutStrategy, RolloutCanaryPercent, RolloutOutcome] as const;

/** How `temporal operator search-attribute create --type` spells each type. */
export const OPERATOR_TYPE_NAME: Record<string, string> = {
  [SearchAttributeType.KEYWORD]: 'Keyword',
  [SearchAttributeType.INT]: 'Int',
};
