/**
 * Service workflow `service-<name>`: the long-lived entity that owns a service's state
 * (spec, serving version, replicas, endpoint). Each `deploy` update gets the next integer
 * version and runs as a child rollout workflow `rollout-<name>-v<version>`; control signals
 * are forwarded to the active rollout. Between rollouts it watches the serving replicas and
 * replaces any that is lost (service-healing.ts). Continues as new when Temporal suggests it.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { isWhole } from '../plan/healing';
import { decideServiceDeploy, type DeployMode } from '../spec/diff';
import type { validateSpec as ValidateSpec } from '../spec/validate';
import {
  advanceSignal,
  controlUpdate,
  deployUpdate,
  gcUpdate,
  pauseSignal,
  promoteSignal,
  resumeSignal,
  rollbackSignal,
  serviceStatusQuery,
  setCanaryPercentSignal,
} from './messages';
import { failureMessage } from './failure-message';
import { PATCHES } from './patches';
import { rolloutWorkflow } from './rollout';
import { onlyRegistered, rolloutAttributes, strategyOf, upsertChanged } from './rollout-search-attributes';
import { malformedRequest } from './rollout-control';
import { RolloutService } from './search-attributes';
import { compactPercentArg, compactRollbackArg } from './signal-payloads';
import { collectGarbage, gcRefusal, recoverFromFailedRollout } from './service-gc';
import { healService, watchServiceReplicas } from './service-healing';
import { ReplicaStateReporter } from './replica-states';
import { serviceStatusOf } from './service-status';
import type { DeployInput, RolloutSummary, ServiceState, ServiceWorkflowInput } from './types';
import { rolloutWorkflowId } from './types';

const HISTORY_KEPT = 20;

// One update to another workflow: seconds. Bounded tightly so that after a worker crash the
// caller's answer comes within seconds of a worker being back (retries reuse the update id).
const { controlRollout } = proxyActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '5 seconds',
  retry: { maximumAttempts: 10, nonRetryableErrorTypes: ['ControlRefused', 'ProviderNotConfigured'] },
});

// Which search attributes the namespace has: a local activity (a marker in this history, no
// task round trip), asked before each rollout so that attributes created meanwhile are used.
const { registeredSearchAttributes } = proxyLocalActivities<ReturnType<typeof createActivities>>({
  startToCloseTimeout: '10 seconds',
  retry: { maximumAttempts: 3 },
});

/** The rollout search attributes the namespace has; none when the worker cannot tell (the rollout runs untagged). */
async function namespaceSearchAttributes(): Promise<string[]> {
  try {
    return await registeredSearchAttributes();
  } catch (err) {
    log.warn('could not list the namespace\'s search attributes: this rollout is not tagged', { error: failureMessage(err) });
    return [];
  }
}

export async function serviceWorkflow(input: ServiceWorkflowInput): Promise<void> {
  const state: ServiceState = input.state ?? {
    name: input.name,
    version: 0,
    nextVersion: 1,
    replicas: [],
    replicaSeq: 0,
    history: [],
  };
  let pending: { deploy: DeployInput; version: number; mode: Exclude<DeployMode, 'unchanged'> } | undefined;

  // Roll out, apply in place or nothing; a service a failed rollout left mixed is always rolled out.
  function deployDecision(deploy: DeployInput) {
    return decideServiceDeploy(state, deploy.spec, deploy.force);
  }

  setHandler(
    deployUpdate,
    async (deploy) => {
      const decision = deployDecision(deploy);
      if (decision.mode === 'unchanged') return { version: state.version, ...decision };
      const version = state.nextVersion++;
      pending = { deploy, version, mode: decision.mode };
      // Answer once the rollout workflow exists, so the caller can follow it by id.
      await condition(() => state.activeRollout?.version === version || state.history.some((h) => h.version === version));
      return { version, rolloutWorkflowId: rolloutWorkflowId(state.name, version), ...decision };
    },
    {
      validator: (deploy) => {
        if (!deploy?.spec || typeof deploy.spec !== 'object') throw new Error('deploy needs a spec');
        // The CLI validates first; a deploy sent around it (`temporal workflow update execute`)
        // gets the same field errors here, before a version is taken.
        const checked = loadValidateSpec()(deploy.spec);
        if (!checked.ok) throw new Error(`invalid spec: ${checked.issues.slice(0, 5).map((i) => `${i.path}: ${i.message}`).join('; ')}`);
        if (deploy.spec.name !== state.name) {
          throw new Error(`spec is for service "${deploy.spec.name}", this is service "${state.name}"`);
        }
        const running = state.activeRollout ?? (pending ? { version: pending.version } : undefined);
        if (running) {
          throw new Error(
            `a rollout of ${state.name} v${running.version} is in progress; wait for it to finish, or stop it with \`rollout rollback ${state.name}\``,
          );
        }
        if (deploy.canaryPercent !== undefined) {
          const p = deploy.canaryPercent;
          if (typeof p !== 'number' || !Number.isFinite(p) || p < 0 || p > 100) throw new Error(`canary percent must be from 0 to 100, got ${JSON.stringify(p)}`);
          if (!state.spec || state.version === 0) throw new Error('a first deploy has no serving version to split traffic with: deploy without --canary-percent');
          if (deploy.spec.rollout.strategy === 'blue_green') throw new Error('a blue_green rollout never splits traffic: --canary-percent does not apply');
          const decision = deployDecision(deploy);
          if (decision.mode !== 'rollout') throw new Error(`nothing to canary: ${decision.reason}${decision.reason.includes('--force') ? '' : '; add --force to roll out new replicas'}`);
        }
      },
    },
  );

  // Control signals go to the active rollout as they came (the rollout records and ignores bad ones).
  const forward = (name: string, send: (workflowId: string) => Promise<void>): void => {
    if (!state.activeRollout) return log.info(`ignored ${name}: no rollout in progress`);
    const { workflowId } = state.activeRollout;
    // The rollout may close before the signal reaches it (it just finished, or was terminated):
    // then there is nothing left to control. Uncaught, the failed signal would be an unhandled
    // rejection, which fails the workflow task on every retry: the service would be stuck.
    void send(workflowId).catch((err: unknown) => log.info(`ignored ${name}: ${workflowId} did not take it (${failureMessage(err)})`));
  };
  const handle = (id: string) => getExternalWorkflowHandle(id);
  setHandler(pauseSignal, () => forward('pause', (id) => handle(id).signal(pauseSignal)));
  setHandler(resumeSignal, () => forward('resume', (id) => handle(id).signal(resumeSignal)));
  setHandler(advanceSignal, () => forward('advance', (id) => handle(id).signal(advanceSignal)));
  setHandler(promoteSignal, () => forward('promote', (id) => handle(id).signal(promoteSignal)));
  // A signal's payload is in this history once already (the signal itself): what is forwarded is
  // only what the rollout can use, so a megabyte of junk is not written a second time.
  const compact = <T>(arg: T, compacted: (a: T) => T): T => (patched(PATCHES.compactForwardedSignals) ? compacted(arg) : arg);
  setHandler(setCanaryPercentSignal, (arg) => forward('setCanaryPercent', (id) => handle(id).signal(setCanaryPercentSignal, compact(arg, compactPercentArg))));
  setHandler(rollbackSignal, (arg) => forward('rollback', (id) => handle(id).signal(rollbackSignal, compact(arg, compactRollbackArg))));
  setHandler(
    controlUpdate,
    async (req) => {
      const workflowId = state.activeRollout?.workflowId ?? '';
      try {
        return await controlRollout.executeWithOptions({ summary: `${req.action} → ${workflowId}` }, [{ workflowId, request: req }]);
      } catch (err) {
        // The rollout's own refusal, as the caller would have got it from the rollout itself.
        throw ApplicationFailure.create({ type: 'ControlRefused', message: failureMessage(err), nonRetryable: true });
      }
    },
    {
      validator: (req) => {
        // The form first, in the rollout's words. Accepted, a request enters this history (with
        // its payload, twice: the update and the activity's input) before the rollout refuses it,
        // and the handler names its action: null or {"action": {"toString": 1}} failed there with a
        // TypeError, and megabytes of junk piled up in a history that lives as long as the service.
        const malformed = malformedRequest(req);
        if (malformed) throw new Error(malformed);
        if (!state.activeRollout) throw new Error(`${state.name} has no rollout in progress (serving v${state.version}); nothing to ${req.action}`);
      },
    },
  );
  setHandler(serviceStatusQuery, () => serviceStatusOf(state));
  setHandler(gcUpdate, (req) => collectGarbage(state, req ?? {}, () => state.activeRollout !== undefined || pending !== undefined), {
    validator: (_req) => {
      const refusal = gcRefusal(state, pending?.version);
      if (refusal) throw new Error(refusal);
    },
  });

  // A rollout or continue-as-new takes precedence over watching and healing.
  const interrupted = () => pending !== undefined || workflowInfo().continueAsNewSuggested;
  const serving = () => state.version > 0 && state.spec !== undefined && !state.activeRollout;
  // The replica-state metrics (replica-states.ts): the service reports its replicas whenever no
  // rollout runs (each turn of this loop: at least once a watch window), the rollout while one does.
  const replicaStates = new ReplicaStateReporter(state.name);
  // Its replicas run on the serving spec's provider (a service with no serving spec yet has none).
  const reportReplicas = () => replicaStates.report(state.replicas.map((r) => ({ ...r, provider: state.spec?.resources.provider ?? 'unknown' })));

  for (;;) {
    if (!state.activeRollout) reportReplicas();
    // (Patched: a service replaying a history from before self-healing waits as it did then.)
    if (!interrupted() && serving() && patched(PATCHES.selfHealing)) {
      // Between rollouts the service keeps itself whole: watch, and replace what is lost (or
      // missing: a failed rollout may have left fewer, or other versions').
      const lost = isWhole(state.replicas, state.version, state.spec!.replicas) ? await watchServiceReplicas(state, interrupted) : [];
      if (lost.length > 0 || !isWhole(state.replicas, state.version, state.spec!.replicas)) await healService(state, lost, interrupted, replicaStates);
      continue;
    }
    await condition(() => pending !== undefined || workflowInfo().continueAsNewSuggested);
    if (pending) {
      const { deploy, version, mode } = pending;
      const workflowId = rolloutWorkflowId(state.name, version);
      let summary: RolloutSummary;
      // (Patched: a service replaying a history from before search attributes started its rollouts untagged.)
      const registered = patched(PATCHES.rolloutSearchAttributes) ? await namespaceSearchAttributes() : undefined;
      // The service too carries RolloutService: a filter on it shows the service and its rollouts.
      if (registered) upsertChanged([{ key: RolloutService, value: state.name }], registered);
      const attributes = registered
        ? onlyRegistered(rolloutAttributes({ service: state.name, version, strategy: strategyOf(mode, deploy.spec) }, { phase: 'rolling_out', canaryPercent: 0 }), registered)
        : [];
      try {
        // The deploy update answers once the child has started, so callers can follow it by id;
        // `pending` stays set until then, so a second deploy is refused meanwhile.
        const child = await startChild(rolloutWorkflow, {
          workflowId,
          // What the Temporal UI shows for this rollout in lists and at the top of its page.
          staticSummary: `${state.name}: ${state.version ? `v${state.version} → ` : 'first deploy, '}v${version} (${mode === 'in_place' ? 'in place' : deploy.spec.rollout.strategy}, ${deploy.spec.replicas} replica(s)${deploy.canaryPercent !== undefined ? `, manual at ${deploy.canaryPercent}%` : ''})`,
          staticDetails: `Spec of v${version}:\n\n\`\`\`json\n${JSON.stringify(deploy.spec, null, 2)}\n\`\`\``,
          ...(attributes.length > 0 ? { typedSearchAttributes: attributes } : {}),
          args: [
            {
              service: state.name,
              fromVersion: state.version,
              fromSpec: state.spec,
              toVersion: version,
              toSpec: deploy.spec,
              replicas: state.replicas,
              replicaSeq: state.replicaSeq,
              mode,
              canaryPercent: deploy.canaryPercent,
              ...(registered ? { searchAttributes: registered } : {}),
            },
          ],
        });
        state.activeRollout = { workflowId, version };
        // The rollout owns the replicas now, and reports them.
        replicaStates.clear();
        pending = undefined;
        const result = await child.result();
        if (result.outcome === 'succeeded') {
          state.version = version;
          state.spec = deploy.spec;
        }
        state.replicas = result.replicas;
        state.replicaSeq = result.replicaSeq;
        state.endpoint = result.endpoint ?? state.endpoint;
        summary = { version, workflowId, outcome: result.outcome, reason: result.reason };
      } catch (err) {
        // The rollout workflow itself failed (terminated, or a bug): keep the last known state.
        log.error('rollout workflow failed', { workflowId, error: String(err) });
        summary = { version, workflowId, outcome: 'failed', reason: `rollout workflow failed: ${failureMessage(err)}` };
        pending = undefined;
        // It did not roll back: what it launched would run on, unowned. (Patched: a service
        // replaying a history from before this ran nothing here.)
        if (state.activeRollout && patched(PATCHES.sweepAfterFailedRollout)) await recoverFromFailedRollout(state, version, deploy.spec);
      }
      state.history = [...state.history, summary].slice(-HISTORY_KEPT);
      state.activeRollout = undefined;
    } else {
      await condition(allHandlersFinished);
      if (pending === undefined) {
        // The next run reports them again (a worker that is not this one must not count them twice).
        replicaStates.clear();
        await continueAsNew<typeof serviceWorkflow>({ name: state.name, state });
      }
    }
  }
}

/**
 * The spec schema (zod) is loaded by the first deploy a service workflow validates, not at import.
 * The worker's reusable V8 context initializes the modules a workflow imports once per workflow
 * run: imported at the top, zod and the schema were built again for every rollout workflow too
 * (half of each new workflow's start-up on the worker, measured by the fleet bench's profile).
 */
function loadValidateSpec(): typeof ValidateSpec {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a lazy load, on purpose (above)
  return (require('../spec/validate') as typeof import('../spec/validate')).validateSpec;
}
