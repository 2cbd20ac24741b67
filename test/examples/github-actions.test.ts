/**
 * examples/ci/github-actions.yml: valid YAML of a GitHub Actions workflow, and every `rollout …`
 * command in its steps is one the CLI has (commander's own definitions, src/cli/main.ts), with
 * options the command (or the program) defines and as many arguments as it takes; it connects
 * through the TEMPORAL_* variables with the API key from a secret; the deploy step gates on each
 * exit code the README documents; promote and rollback are manual jobs.
 */
import type { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { buildProgram } from '../../src/cli/main';

const ROOT = path.resolve(__dirname, '..', '..');
const FILE = path.join(ROOT, 'examples', 'ci', 'github-actions.yml');

interface Step {
  name?: string;
  run?: string;
  uses?: string;
  env?: Record<string, string>;
}
interface Job {
  if?: string;
  environment?: string;
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  env: Record<string, string>;
  jobs: Record<string, Job>;
}

const workflow = YAML.parse(fs.readFileSync(FILE, 'utf8')) as Workflow;

/** Shell words of one command line (quotes removed; `$VAR` kept as a word). */
function words(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** Every `rollout …` invocation in the workflow's run steps: [job, words after `rollout`]. */
function rolloutCommands(): Array<{ job: string; args: string[] }> {
  const found: Array<{ job: string; args: string[] }> = [];
  for (const [job, { steps }] of Object.entries(workflow.jobs)) {
    for (const step of steps) {
      for (const line of (step.run ?? '').split('\n')) {
        const at = words(line).indexOf('rollout');
        if (at >= 0 && words(line)[at - 1] === 'npx') found.push({ job, args: words(line).slice(at + 1) });
      }
    }
  }
  return found;
}

/** Checks one invocation against commander's definitions; the problems found. */
function problemsOf(program: Command, args: string[]): string[] {
  const [name, ...rest] = args;
  const command = program.commands.find((c) => c.name() === name);
  if (!command) return [`no command ${name}`];
  const problems: string[] = [];
  const options = [...command.options, ...program.options];
  const positionals: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const word = rest[i];
    if (!word.startsWith('-')) {
      positionals.push(word);
      continue;
    }
    const option = options.find((o) => o.long === word || o.short === word);
    if (!option) {
      problems.push(`${name}: no option ${word}`);
      continue;
    }
    if (option.required || option.optional) i++; // takes a value
  }
  const args_ = command.registeredArguments;
  const required = args_.filter((a) => a.required).length;
  if (positionals.length < required || positionals.length > args_.length) problems.push(`${name}: ${positionals.length} argument(s), expected ${required}–${args_.length}`);
  return problems;
}

describe('examples/ci/github-actions.yml', () => {
  const program = buildProgram();

  test('is a workflow: triggers, jobs with steps', () => {
    expect(Object.keys(workflow.on).sort()).toEqual(['push', 'workflow_dispatch']);
    expect(Object.keys(workflow.jobs).sort()).toEqual(['deploy', 'promote', 'rollback']);
    for (const job of Object.values(workflow.jobs)) expect(job.steps.length).toBeGreaterThan(0);
  });

  test('every rollout command exists, with its options and arguments', () => {
    const commands = rolloutCommands();
    expect(commands.map((c) => `${c.job}: ${c.args[0]}`)).toEqual(
      expect.arrayContaining(['deploy: validate', 'deploy: plan', 'deploy: deploy', 'deploy: status', 'promote: promote', 'rollback: rollback']),
    );
    for (const { args } of commands) expect({ args, problems: problemsOf(program, args) }).toEqual({ args, problems: [] });
    const deploy = commands.find((c) => c.args[0] === 'deploy');
    expect(deploy?.args).toEqual(['deploy', '$SPEC', '--wait']);
  });

  test('the checker can fail: an unknown command, an unknown flag, a missing argument', () => {
    expect(problemsOf(program, ['deploi', 'x.yaml'])).toEqual(['no command deploi']);
    expect(problemsOf(program, ['deploy', 'x.yaml', '--wiat'])).toEqual(['deploy: no option --wiat']);
    expect(problemsOf(program, ['rollback', '--reason', 'why'])).toEqual(['rollback: 0 argument(s), expected 1–1']);
    expect(problemsOf(program, ['rollback', 'llm', '--reason', 'why'])).toEqual([]);
  });

  test('connects to Temporal Cloud through the TEMPORAL_* variables, the API key from a secret', () => {
    expect(workflow.env.TEMPORAL_API_KEY).toBe('${{ secrets.TEMPORAL_API_KEY }}');
    expect(workflow.env.TEMPORAL_ADDRESS).toMatch(/^\$\{\{ (vars|secrets)\.TEMPORAL_ADDRESS \}\}$/);
    expect(workflow.env.TEMPORAL_NAMESPACE).toMatch(/^\$\{\{ (vars|secrets)\.TEMPORAL_NAMESPACE \}\}$/);
  });

  test("the deploy step gates on every exit code the README documents, and exits with the CLI's", () => {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    // The paragraph that starts "Exit codes:" (to the blank line after it).
    const paragraph = /^Exit codes: ([\s\S]*?)\n\n/m.exec(readme)?.[1] ?? '';
    const documented = [...paragraph.matchAll(/\*\*(\d)\*\*/g)].map((m) => m[1]);
    expect(documented).toEqual(['0', '1', '2', '3']);
    const step = workflow.jobs.deploy.steps.find((s) => s.run?.includes('rollout deploy'));
    expect(step?.run).toMatch(/set \+e\n\s*npx rollout deploy "\$SPEC" --wait\n\s*code=\$\?/);
    for (const code of documented) expect(step?.run).toMatch(new RegExp(`^\\s*${code}\\) `, 'm'));
    expect(step?.run?.trim().split('\n').pop()?.trim()).toBe('exit "$code"');
  });

  test('promote and rollback are manual jobs behind environments (approval), deploy runs on push', () => {
    expect(workflow.jobs.deploy.if).toBe("github.event_name == 'push'");
    expect(workflow.jobs.promote.if).toBe("github.event_name == 'workflow_dispatch' && inputs.action == 'promote'");
    expect(workflow.jobs.rollback.if).toBe("github.event_name == 'workflow_dispatch' && inputs.action == 'rollback'");
    expect(workflow.jobs.promote.environment).toBeTruthy();
    expect(workflow.jobs.rollback.environment).toBeTruthy();
    const dispatch = workflow.on.workflow_dispatch as { inputs: { action: { options: string[] } } };
    expect(dispatch.inputs.action.options).toEqual(['promote', 'rollback']);
  });
});
