/**
 * Which of the rollout search attributes (src/workflows/search-attributes.ts) the worker's
 * namespace has. Upserting, or starting a workflow with, an attribute the namespace lacks fails
 * the workflow task on every retry: the workflows set only those this check found. The worker
 * runs it at start (and says what is missing, with the command that creates it); the service
 * workflow asks before each rollout (a local activity: its answer is in the history, so replay
 * does as the first run did), so attributes created later are used from the next rollout on.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Client, Connection } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { OPERATOR_TYPE_NAME, ROLLOUT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

export interface SearchAttributeCheck {
  /** Ours that the namespace has, with the right type: the workflows set these. */
  registered: string[];
  /** Ours that the namespace lacks: `createCommand` creates them. */
  missing: string[];
  /** Ours that the namespace has with another type (cannot be fixed by creating). */
  wrongType: { name: string; expected: string; actual: string }[];
}

/** Lists the namespace's custom search attributes and compares them with ours. */
export async function checkSearchAttributes(connection: Pick<Connection, 'operatorService'>, namespace: string): Promise<SearchAttributeCheck> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  const have = customAttributes ?? {};
  const check: SearchAttributeCheck = { registered: [], missing: [], wrongType: [] };
  for (const key of ROLLOUT_SEARCH_ATTRIBUTES) {
    const actual = have[key.name];
    if (actual === undefined || actual === null) check.missing.push(key.name);
    else if (actual === encodeSearchAttributeIndexedValueType(key.type)) check.registered.push(key.name);
    else check.wrongType.push({ name: key.name, expected: OPERATOR_TYPE_NAME[key.type], actual: typeNameOf(actual) });
  }
  return check;
}

/**
 * The one `temporal operator search-attribute create` command that creates every attribute named:
 * a `--name` and its `--type` per attribute (the CLI pairs them in order; checked with CLI 1.9.1,
 * whose `--name A --name B --type Keyword` would create A only).
 */
/** The command, aimed at the worker's own server (a bare one would go to the CLI's default, localhost:7233). */
export function createCommand(namespace: string, names: readonly string[], address: string): string {
  const pairs = ROLLOUT_SEARCH_ATTRIBUTES.filter((key) => names.includes(key.name)).map((key) => `--name ${key.name} --type ${OPERATOR_TYPE_NAME[key.type]}`);
  return `temporal operator search-attribute create --address ${shellWord(address)} --namespace ${shellWord(namespace)} ${pairs.join(' ')}`;
}

/**
 * What the worker says at start when the namespace lacks some (one line each), or nothing when
 * it has them all. Rollouts work either way; only filtering by the missing ones does not.
 */
export function searchAttributeWarnings(check: SearchAttributeCheck, namespace: string, address: string): string[] {
  const lines: string[] = [];
  if (check.missing.length > 0) {
    lines.push(
      `namespace ${namespace} lacks the search attribute(s) ${check.missing.join(', ')}: rollouts run, but are not tagged with them (no filtering by them in the UI or \`temporal workflow list --query\`); create them with:`,
      `  ${createCommand(namespace, check.missing, address)}`,
    );
  }
  for (const w of check.wrongType) {
    lines.push(`namespace ${namespace} has the search attribute ${w.name} as ${w.actual}, not ${w.expected}: rollouts are not tagged with it (it cannot be changed in place; see the README, "Search attributes")`);
  }
  return lines;
}

export function createSearchAttributeActivities(client: Client | undefined) {
  return {
    /** The rollout search attributes the worker's namespace has (a local activity of the service workflow). */
    async registeredSearchAttributes(): Promise<string[]> {
      if (!client) throw ApplicationFailure.create({ type: 'ProviderNotConfigured', message: 'this worker has no Temporal client to list search attributes with', nonRetryable: true });
      return (await checkSearchAttributes(client.connection, client.options.namespace)).registered;
    },
  };
}

function typeNameOf(type: number): string {
  const names: Record<number, string> = { 1: 'Text', 2: 'Keyword', 3: 'Int', 4: 'Double', 5: 'Bool', 6: 'Datetime', 7: 'KeywordList' };
  return names[type] ?? `type ${type}`;
}

/** A namespace as one shell word (Cloud namespaces are `name.account`: no quoting needed, but a user's may be). */
function shellWord(s: string): string {
  return /^[A-Za-z0-9._:/@-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
