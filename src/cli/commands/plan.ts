/**
 * `rollout plan <spec.yaml> [--output json] [--force]`: the stages a deploy of this spec would
 * go through (replica counts and traffic per version), computed by the planners the workflow
 * uses, as if every replica became READY at once. Reads the running service when Temporal
 * answers within a few seconds, otherwise plans from `replicas` READY replicas of a previous
 * version. Starts and changes nothing. Under the stages: what the rollout costs (estimate.ts),
 * from the serving replicas' measured load time, else `initial_delay_seconds`.
 */
import { Client, Connection } from '@temporalio/client';
import { explainConnectFailure } from '../../temporal/connect';
import { simulateRollout, type PlanStage } from '../../plan';
import type { ObservedReplica } from '../../plan/types';
import { decideDeploy, type DeployMode } from '../../spec/diff';
import { formatIssues, loadSpecFile } from '../../spec/load';
import type { ServiceSpec } from '../../spec/types';
import type { ServiceStatus } from '../../workflows/types';
import { isUnreachable, temporalTarget, type ConnectionFlags, type TemporalTarget } from '../connection';
import { CliError, ExitCode } from '../errors';
import { planEstimate, renderEstimate, type PlanEstimate } from '../plan-estimate';
import { serviceStatus, ServiceNotFoundError } from '../service-handle';

export interface PlanOptions {
  output?: 'text' | 'json';
  force?: boolean;
  /** The global connection flags (`rollout --profile cloud plan spec.yaml`). */
  connection?: ConnectionFlags;
}

/** What `rollout plan -o json` prints. */
export interface PlanView {
  service: string;
  mode: DeployMode;
  reason: string;
  fromVersion: number;
  toVersion: number;
  stages: PlanStage[];
  estimate: PlanEstimate;
}

const CONNECT_TIMEOUT = '2s';
const QUERY_TIMEOUT_MS = 5_000;
const PROBE_TIMEOUT_MS = 1_000;

export async function planCommand(specPath: string, opts: PlanOptions): Promise<number> {
  const loaded = await loadSpecFile(specPath);
  if (!loaded.ok) {
    throw new CliError(`invalid spec ${specPath}:\n${formatIssues(loaded.issues)}`, ExitCode.invalidInput);
  }
  const spec = loaded.spec;
  const serving = await readService(spec.name, temporalTarget(opts.connection));
  if ('offline' in serving) {
    process.stderr.write(`${serving.offline}: planning from ${spec.replicas} READY replica(s) of a previous version\n`);
  } else if (serving.status.activeRollout) {
    process.stderr.write(
      `a rollout of ${spec.name} v${serving.status.activeRollout.version} is in progress (a deploy is refused until it ends): planning from the serving v${serving.status.version} replicas\n`,
    );
  }
  const view = planView(spec, 'status' in serving ? serving.status : undefined, opts.force ?? false);
  // `truncated`: the simulation stopped early (its last stage says where); a script need not read notes.
  const json = { ...view, truncated: view.stages.some((s) => s.truncated === true) };
  process.stdout.write(opts.output === 'json' ? JSON.stringify(json, null, 2) + '\n' : renderPlan(view, spec, 'offline' in serving));
  return ExitCode.ok;
}

/**
 * The plan for deploying `spec` onto a running service (`status`), or, without one, onto
 * `spec.replicas` READY replicas of a previous version. Pure.
 */
export function planView(spec: ServiceSpec, status: ServiceStatus | undefined, force: boolean): PlanView {
  const stages = planStages(spec, status, force);
  return { ...stages, estimate: planEstimate(spec, status, stages.stages) };
}

function planStages(spec: ServiceSpec, status: ServiceStatus | undefined, force: boolean): Omit<PlanView, 'estimate'> {
  if (!status) {
    const stages = simulateRollout({ toSpec: spec, toVersion: 2, fromSpec: spec, fromVersion: 1 });
    return { service: spec.name, mode: 'rollout', reason: 'no running service read: a rollout from a previous version', fromVersion: 1, toVersion: 2, stages };
  }
  const fromSpec = status.version > 0 ? status.spec : undefined;
  const decision = decideDeploy(fromSpec, spec, force);
  // The next version is an estimate: versions are never reused, so after a rollback it is higher.
  const toVersion = decision.mode === 'unchanged' ? status.version : status.nextVersion;
  const base = { service: spec.name, mode: decision.mode, reason: decision.reason, fromVersion: status.version, toVersion };
  if (decision.mode === 'unchanged') return { ...base, stages: [] };
  if (decision.mode === 'in_place') {
    const from = fromSpec?.replicas ?? spec.replicas;
    if (from === spec.replicas) return { ...base, stages: [] };
    const note = `v${status.version} scaled from ${from} to ${spec.replicas} replica(s) in place, nothing restarted`;
    const launched = spec.replicas > from ? { launched: spec.replicas - from } : {};
    return { ...base, stages: [{ canaryReplicas: 0, canaryPercent: 0, primaryReplicas: spec.replicas, primaryPercent: 100, note, ...launched }] };
  }
  return { ...base, stages: simulateRollout({ toSpec: spec, toVersion, fromSpec, fromVersion: status.version, observed: fromSpec ? servingReplicas(status) : [] }) };
}

/**
 * The serving version's live replicas, READY (the plan's premise: every replica becomes READY);
 * replicas of an unfinished rollout and failed or leaving ones are not part of the plan.
 */
function servingReplicas(status: ServiceStatus): ObservedReplica[] {
  const live = new Set(['PROVISIONING', 'STARTING', 'READY', 'NOT_READY']);
  return status.replicas.filter((r) => r.version === status.version && live.has(r.status)).map((r) => ({ id: r.id, version: r.version, status: 'READY' }));
}

/** The plan as text; `assumed`: no running service was read, the versions stand for "previous" and "new". */
export function renderPlan(view: PlanView, spec: ServiceSpec, assumed = false): string {
  const lines: string[] = [];
  const versions =
    view.mode === 'unchanged'
      ? `v${view.fromVersion}`
      : view.fromVersion === 0
        ? `first deploy → v${view.toVersion}`
        : `v${view.fromVersion} → v${view.toVersion} (${assumed ? 'a previous version → the new one' : 'the next version'})`;
  lines.push(`service   ${view.service}: ${versions}`);
  lines.push(`mode      ${view.mode.replace('_', ' ')}: ${view.reason}`);
  if (view.mode === 'rollout') lines.push(`rollout   ${spec.rollout.strategy}, ${spec.replicas} replica(s)`);
  if (view.stages.length === 0) {
    lines.push('', view.mode === 'unchanged' ? 'nothing to do' : 'no replica is launched or removed');
    return lines.join('\n') + '\n';
  }
  lines.push('');
  const header = ['STAGE', 'CANARY REPLICAS', 'CANARY %', 'PRIMARY REPLICAS', 'PRIMARY %', 'NOTE'];
  const rows = view.stages.map((s, i) => [String(i + 1), String(s.canaryReplicas), `${s.canaryPercent}%`, String(s.primaryReplicas), `${s.primaryPercent}%`, s.note]);
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => row[i].length)));
  for (const row of [header, ...rows]) lines.push(row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd());
  lines.push('', ...renderEstimate(view, spec, assumed));
  return lines.join('\n') + '\n';
}

/** The running service's status, or why there is none (unreachable, no such service, no answer). */
async function readService(service: string, target: TemporalTarget): Promise<{ status: ServiceStatus } | { offline: string }> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...target.connectionOptions, connectTimeout: CONNECT_TIMEOUT });
  } catch (err) {
    // A failed TLS handshake or refused credentials is said as such; a plan is made all the same.
    const failure = await explainConnectFailure(err, target, PROBE_TIMEOUT_MS);
    return { offline: failure.kind === 'unreachable' ? `Temporal at ${target.address} is unreachable` : failure.message };
  }
  try {
    const client = new Client({ connection, namespace: target.namespace });
    const { status } = await connection.withDeadline(Date.now() + QUERY_TIMEOUT_MS, () => serviceStatus(client, service));
    return { status };
  } catch (err) {
    // Temporal answered that there is no such service: the deploy would be its first.
    if (err instanceof ServiceNotFoundError) return { status: { name: service, version: 0, nextVersion: 1, replicas: [], traffic: {} } };
    if (err instanceof CliError) return { offline: err.message.split(';')[0] };
    if (isUnreachable(err)) return { offline: `Temporal at ${target.address} did not answer about ${service}` };
    // A plan is advice: whatever kept the service from being read, plan without it and say why.
    return { offline: `could not read service ${service} (${err instanceof Error ? err.message.split('\n')[0] : String(err)})` };
  } finally {
    await connection.close();
  }
}
