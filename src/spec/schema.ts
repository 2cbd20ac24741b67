/**
 * The service spec's zod schema. Its output is exactly `ServiceSpec` (types.ts), with every
 * default filled in. Messages say what was expected and what was given.
 */
import { z } from 'zod';
import { resolveLimits } from '../plan/limits';
import { parseDurationMs } from './duration';
import type { ServiceSpec } from './types';

type Issue = { input?: unknown };
const shown = (input: unknown): string => (input === undefined ? 'nothing' : JSON.stringify(input));
const expected = (what: string) => (iss: Issue) => `expected ${what}, got ${shown(iss.input)}`;

const positiveInt = (what: string) => z.number({ error: expected(what) }).int({ error: expected(what) });

export const QUANTITY_PATTERN = /^\d+(\.\d+)?%$/;
const quantityExpected = expected('a count (0, 1, 2…) or a percent string like "25%"');
const quantity = z.union(
  [
    z.number({ error: quantityExpected }).int({ error: quantityExpected }).min(0, { error: quantityExpected }),
    z.string({ error: quantityExpected }).regex(QUANTITY_PATTERN, { error: quantityExpected }),
  ],
  { error: quantityExpected },
);

const duration = z.string({ error: expected('a duration like "90s", "10m" or "2h"') }).refine(
  (s) => {
    try {
      return parseDurationMs(s) > 0;
    } catch {
      return false;
    }
  },
  { error: expected('a duration like "90s", "10m", "2h" or "1h30m", greater than 0') },
);

const resources = z.strictObject({
  provider: z.enum(['local', 'aws'], { error: expected('"local" or "aws"') }).default('local'),
  accelerators: z
    .string({ error: expected('an accelerator like "A100:1" or "L4:2"') })
    .regex(/^[A-Za-z0-9_-]+(:[1-9][0-9]*)?$/, { error: expected('an accelerator like "A100:1" or "L4:2" (NAME[:COUNT])') })
    .optional(),
  instance_type: z.string({ error: expected('an instance type name') }).optional(),
});

const readinessProbe = z.preprocess(
  (v) => (typeof v === 'string' ? { path: v } : v),
  z.strictObject({
    path: z.string({ error: expected('an HTTP path like "/health"') }).startsWith('/', { error: expected('a path starting with "/"') }).default('/health'),
    initial_delay_seconds: positiveInt('a whole number of seconds ≥ 0').min(0, { error: expected('a whole number of seconds ≥ 0') }).default(1200),
    period_seconds: z.number({ error: expected('a number of seconds > 0') }).positive({ error: expected('a number of seconds > 0') }).default(5),
    timeout_seconds: z.number({ error: expected('a number of seconds > 0') }).positive({ error: expected('a number of seconds > 0') }).default(5),
    failure_threshold: positiveInt('a whole number ≥ 1').min(1, { error: expected('a whole number ≥ 1') }).default(3),
  }),
);

const percentExpected = expected('a whole percent from 1 to 100');
const percent = z.number({ error: percentExpected }).int({ error: percentExpected }).min(1, { error: percentExpected }).max(100, { error: percentExpected });

// `{pause: "10m"}` and `{pause: {duration: "10m"}}` are the same step; `{pause: {}}` holds until told.
const pauseStep = z.strictObject({
  pause: z.preprocess(
    (v) => (typeof v === 'string' ? { duration: v } : v === null ? {} : v),
    z.strictObject({ duration: duration.optional() }, { error: expected('a duration like "10m", or {} to hold until told to go on') }),
  ),
});
const weightStep = z.strictObject({ weight: percent });
const canaryStep = z.union([weightStep, pauseStep], {
  error: (iss: Issue) => `expected a step {weight: 1–100} or {pause: "10m"} or {pause: {}}, got ${shown(iss.input)}`,
});

const analysis = z.strictObject({
  interval: duration.default('1m'),
  max_error_rate: z.number({ error: expected('a fraction from 0 to 1, like 0.05') }).min(0, { error: expected('a fraction from 0 to 1, like 0.05') }).max(1, { error: expected('a fraction from 0 to 1, like 0.05') }).optional(),
  max_p99_latency_ms: z.number({ error: expected('milliseconds > 0') }).positive({ error: expected('milliseconds > 0') }).optional(),
  min_requests: positiveInt('a whole number ≥ 0').min(0, { error: expected('a whole number ≥ 0') }).default(20),
  failure_limit: positiveInt('a whole number ≥ 0').min(0, { error: expected('a whole number ≥ 0') }).default(0),
});

const rollout = z.strictObject({
  strategy: z.enum(['rolling', 'blue_green', 'canary'], { error: expected('"rolling", "blue_green" or "canary"') }).default('rolling'),
  max_surge: quantity.default(1),
  max_unavailable: quantity.default(0),
  timeout: duration.default('120m'),
  steps: z.array(canaryStep, { error: expected('a list of steps') }).min(1, { error: expected('at least one step') }).optional(),
  max_surge_percent: percent.optional(),
  analysis: analysis.optional(),
});

export const serviceSpecSchema = z
  .strictObject({
    name: z
      .string({ error: expected('a service name') })
      .regex(/^[a-z][a-z0-9-]{0,39}$/, { error: expected('lowercase letters, digits and "-", starting with a letter, at most 40 characters') }),
    replicas: positiveInt('a whole number ≥ 1').min(1, { error: expected('a whole number ≥ 1') }).default(1),
    run: z.string({ error: expected('a shell command') }).min(1, { error: expected('a non-empty shell command') }),
    env: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()], { error: expected('a string, number or boolean value') }).transform(String))
      .default({}),
    resources: resources.prefault({}),
    readiness_probe: readinessProbe.prefault({}),
    rollout: rollout.prefault({}),
  })
  .superRefine((spec, ctx) => {
    const r = spec.rollout;
    if (r.steps && r.strategy !== 'canary') {
      ctx.addIssue({ code: 'custom', path: ['rollout', 'steps'], message: `steps need strategy: canary (strategy is ${r.strategy})` });
    }
    if (r.analysis && r.analysis.max_error_rate === undefined && r.analysis.max_p99_latency_ms === undefined) {
      ctx.addIssue({ code: 'custom', path: ['rollout', 'analysis'], message: 'expected at least one threshold: max_error_rate or max_p99_latency_ms' });
    }
    if (r.analysis && r.strategy === 'blue_green') {
      ctx.addIssue({ code: 'custom', path: ['rollout', 'analysis'], message: 'analysis needs a canary or rolling strategy (blue_green never splits traffic)' });
    }
    if (r.max_surge_percent !== undefined && Number.isInteger(r.max_surge_percent) && r.max_surge_percent >= 1 && r.max_surge_percent <= 100) {
      if (r.strategy === 'blue_green') {
        ctx.addIssue({ code: 'custom', path: ['rollout', 'max_surge_percent'], message: 'max_surge_percent works with strategy rolling or canary (blue_green launches the whole new fleet at once)' });
      } else if (Math.floor((spec.replicas * r.max_surge_percent) / 100) < 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['rollout', 'max_surge_percent'],
          message: `${r.max_surge_percent}% of ${spec.replicas} replica(s) is less than one replica: expected at least ${Math.ceil(100 / spec.replicas)}`,
        });
      }
      return;
    }
    if (r.strategy === 'canary' && resolveLimits(spec.replicas, r.max_surge, r.max_unavailable).maxSurge < 1) {
      ctx.addIssue({ code: 'custom', path: ['rollout', 'max_surge'], message: 'a canary launches its replicas beside the serving ones: expected max_surge ≥ 1 (or max_surge_percent)' });
      return;
    }
    const limits = resolveLimits(spec.replicas, spec.rollout.max_surge, spec.rollout.max_unavailable);
    if (limits.maxSurge === 0 && limits.maxUnavailable === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['rollout'],
        message: `max_surge (${JSON.stringify(spec.rollout.max_surge)}) and max_unavailable (${JSON.stringify(spec.rollout.max_unavailable)}) resolve to 0 for ${spec.replicas} replica(s): the rollout could never make progress`,
      });
    }
  });

// Compile-time proof that the schema's output is the ServiceSpec type, both ways.
type SchemaOutput = z.output<typeof serviceSpecSchema>;
export const schemaMatchesType: [SchemaOutput] extends [ServiceSpec] ? ([ServiceSpec] extends [SchemaOutput] ? true : false) : false = true;
