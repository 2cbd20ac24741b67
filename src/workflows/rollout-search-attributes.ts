/**
 * The values of the rollout search attributes (keys: search-attributes.ts) and how a workflow
 * keeps them current. Only attributes the namespace has are ever set (the service workflow asks
 * the worker which, see src/activities/search-attributes.ts): one the namespace lacks would fail
 * the workflow task on every retry. An upsert is one command (and one history event), so it is
 * sent only when a value really changed, all changed values at once.
 */
import type { SearchAttributePair, SearchAttributeType } from '@temporalio/common';
import type { SearchAttributeKey } from '@temporalio/common/lib/search-attributes';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { RolloutStrategy, ServiceSpec } from '../spec/types';
import { RolloutCanaryPercent, RolloutOutcome, RolloutPhase, RolloutService, RolloutStrategy as RolloutStrategyKey, RolloutVersion } from './search-attributes';
import type { RolloutOutcome as Outcome, RolloutPhase as Phase } from './types';

/** What a rollout is, for its search attributes: fixed for its whole life. */
export interface RolloutIdentity {
  service: string;
  version: number;
  /** The spec's strategy, or `in_place` for an update that restarts nothing. */
  strategy: RolloutStrategy | 'in_place';
}

/** A rollout's RolloutStrategy: the spec's strategy, or `in_place` for an update that restarts nothing. */
export function strategyOf(mode: 'rollout' | 'in_place' | undefined, spec: ServiceSpec): RolloutIdentity['strategy'] {
  return mode === 'in_place' ? 'in_place' : spec.rollout.strategy;
}

/** What changes as the rollout moves. */
export interface RolloutProgress {
  phase: Phase;
  canaryPercent: number;
  /** Set once the rollout has ended. */
  outcome?: Outcome;
}

/** Every pair a rollout should carry now, registered or not (see `onlyRegistered`). */
export function rolloutAttributes(id: RolloutIdentity, progress: RolloutProgress): SearchAttributePair[] {
  return [
    { key: RolloutService, value: id.service },
    { key: RolloutVersion, value: id.version },
    { key: RolloutStrategyKey, value: id.strategy },
    { key: RolloutPhase, value: progress.phase },
    { key: RolloutCanaryPercent, value: Math.round(progress.canaryPercent) },
    ...(progress.outcome ? [{ key: RolloutOutcome, value: progress.outcome }] : []),
  ];
}

/** The pairs whose attribute the namespace has. */
export function onlyRegistered(pairs: SearchAttributePair[], registered: readonly string[]): SearchAttributePair[] {
  return pairs.filter((p) => registered.includes(p.key.name));
}

/**
 * Upserts, in one command, those of `pairs` whose attribute the namespace has and whose value is
 * not what the workflow carries already (its start, an earlier upsert, or the run it continued);
 * nothing when none changed. Deterministic: it reads only the workflow's own attributes.
 */
export function upsertChanged(pairs: SearchAttributePair[], registered: readonly string[]): void {
  const current = workflowInfo().typedSearchAttributes;
  const changed = onlyRegistered(pairs, registered).filter((p) => current.get(p.key as SearchAttributeKey<SearchAttributeType>) !== p.value);
  if (changed.length > 0) upsertSearchAttributes(changed);
}
