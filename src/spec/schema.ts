/**
 * The service spec's zod schema. Its output is exactly `ServiceSpec` (types.ts), with every
 * default filled in. Messages say what was expected and what was given.
 */
import { z } from 'zod';
import { resolveLimits } from '../plan/limits';
import { parseDurationMs } from './duration';
import { SPEC_LIMITS as L, utf8Bytes } from './limits';
import { isSecretRef } from './secrets';
import { showValue } from './show-value';
import type { ServiceSpec } from './types';

type Issue = { input?: unknown };
const expected = (what: string) => (iss: Issue) => `expected ${what}, got ${showValue(iss.input)}`;

const positiveInt = (what: string) => z.number({ error: expected(what) }).int({ error: expected(what) });
/** A whole number from `min` to `max`, with both bounds in its message. */
const wholeIn = (min: number, max: number, unit = '') =>
  positiveInt(`a whole number${unit} from ${min} to ${max}`)
    .min(min, { error: expected(`a whole number${unit} from ${min} to ${max}`) })
    .max(max, { error: expected(`a whole number${unit} from ${min} to ${max}`) });
const shortText = (what: string) => z.string({ error: expected(what) }).max(L.shortText, { error: `expected ${what}, at most ${L.shortText} characters` });

export const QUANTITY_PATTERN = /^\d+(\.\d+)?%$/;
const quantityExpected = expected(`a count (0, 1, 2… up to ${L.replicas}) or a percent string like "25%" (up to "100%")`);
const quantity = z.union(
  [
    z.number({ error: quantityExpected }).int({ error: quantityExpected }).min(0, { error: quantityExpected }).max(L.replicas, { error: quantityExpected }),
    z
      .string({ error: quantityExpected })
      .regex(QUANTITY_PATTERN, { error: quantityExpected })
      .refine((p) => parseFloat(p) <= 100, { error: quantityExpected }),
  ],
  { error: quantityExpected },
);

const duration = z.string({ error: expected('a duration like "90s", "10m" or "2h"') }).refine(
  (s) => {
    try {
      const ms = parseDurationMs(s);
      return ms > 0 && ms <= L.durationMs;
    } catch {
      return false;
    }
  },
  { error: expected(`a duration like "90s", "10m", "2h" or "1h30m", greater than 0 and at most ${L.durationMs / 86_400_000}d`) },
);

const ltVersion = expected('a version: a number, "$Latest" or "$Default"');
const resources = z.strictObject({
  provider: z.enum(['local', 'aws'], { error: expected('"local" or "aws"') }).default('local'),
  accelerators: shortText('an accelerator like "A100:1" or "L4:2"')
    .regex(/^[A-Za-z0-9_-]+(:[1-9][0-9]*)?$/, { error: expected('an accelerator like "A100:1" or "L4:2" (NAME[:COUNT])') })
    .refine((a) => !a.includes(':') || Number(a.split(':')[1]) <= L.acceleratorCount, {
      error: expected(`an accelerator count from 1 to ${L.acceleratorCount} GPUs per replica (NAME[:COUNT])`),
    })
    .optional(),
  instance_type: shortText('an instance type name').optional(),
  // provider aws only (checked below); no defaults, so a spec of another provider, or one stored
  // before these fields existed, parses to exactly what it was (no spurious "resources changed").
  region: z.string({ error: expected('an AWS region like "us-east-1"') }).regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, { error: expected('an AWS region like "us-east-1"') }).optional(),
  image_id: z.string({ error: expected('an AMI id like "ami-0123456789abcdef0"') }).regex(/^ami-[0-9a-f]{8,17}$/, { error: expected('an AMI id like "ami-0123456789abcdef0"') }).optional(),
  launch_template: z
    .strictObject(
      {
        id: z.string({ error: expected('a launch template id like "lt-0123456789abcdef0"') }).regex(/^lt-[0-9a-f]{8,17}$/, { error: expected('a launch template id like "lt-0123456789abcdef0"') }).optional(),
        name: z.string({ error: expected('a launch template name') }).regex(/^[a-zA-Z0-9()./_-]{3,128}$/, { error: expected('a launch template name (3–128 letters, digits and ( ) . / _ -)') }).optional(),
        version: z
          .union([z.string().regex(/^(\$Latest|\$Default|[1-9][0-9]{0,17})$/, { error: ltVersion }), z.number().int({ error: ltVersion }).min(1, { error: ltVersion })], { error: ltVersion })
          .transform(String)
          .optional(),
      },
      { error: expected('a launch template {id: lt-…} or {name: …}, with an optional version') },
    )
    .refine((t) => (t.id === undefined) !== (t.name === undefined), { error: 'expected exactly one of id and name' })
    .optional(),
  spot: z.boolean({ error: expected('true or false') }).optional(),
  spot_fallback_on_demand: z.boolean({ error: expected('true or false') }).optional(),
  root_volume_gb: wholeIn(1, 16_384, ' of GiB').optional(),
  public_ip: z.boolean({ error: expected('true or false') }).optional(),
  port: wholeIn(1, 65_535).optional(),
});

/** `resources` fields that only the aws provider reads. */
export const AWS_ONLY_RESOURCES = ['region', 'image_id', 'launch_template', 'spot', 'spot_fallback_on_demand', 'root_volume_gb', 'public_ip', 'port'] as const;

const probeSecondsExpected = expected(`a number of seconds > 0 and at most ${L.probeSeconds}`);
const probeSeconds = z.number({ error: probeSecondsExpected }).positive({ error: probeSecondsExpected }).max(L.probeSeconds, { error: probeSecondsExpected });

const readinessProbe = z.preprocess(
  (v) => (typeof v === 'string' ? { path: v } : v),
  z.strictObject({
    path: shortText('an HTTP path like "/health"').startsWith('/', { error: expected('a path starting with "/"') }).default('/health'),
    initial_delay_seconds: wholeIn(0, L.initialDelaySeconds, ' of seconds').default(1200),
    period_seconds: probeSeconds.default(5),
    timeout_seconds: probeSeconds.default(5),
    failure_threshold: wholeIn(1, L.failureThreshold).default(3),
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
  error: (iss: Issue) => `expected a step {weight: 1–100} or {pause: "10m"} or {pause: {}}, got ${showValue(iss.input)}`,
});

const analysis = z.strictObject({
  interval: duration.default('1m'),
  max_error_rate: z.number({ error: expected('a fraction from 0 to 1, like 0.05') }).min(0, { error: expected('a fraction from 0 to 1, like 0.05') }).max(1, { error: expected('a fraction from 0 to 1, like 0.05') }).optional(),
  max_p99_latency_ms: z.number({ error: expected('milliseconds > 0') }).positive({ error: expected('milliseconds > 0') }).optional(),
  min_requests: wholeIn(0, L.minRequests).default(20),
  failure_limit: wholeIn(0, L.failureLimit).default(0),
});

const rollout = z.strictObject({
  strategy: z.enum(['rolling', 'blue_green', 'canary'], { error: expected('"rolling", "blue_green" or "canary"') }).default('rolling'),
  max_surge: quantity.default(1),
  max_unavailable: quantity.default(0),
  timeout: duration.default('120m'),
  steps: z
    .array(canaryStep, { error: expected('a list of steps') })
    .min(1, { error: expected('at least one step') })
    .max(L.steps, { error: `expected at most ${L.steps} steps` })
    .optional(),
  max_surge_percent: percent.optional(),
  analysis: analysis.optional(),
});

/**
 * A service's name: in the spec (`name`) and wherever the CLI takes one (`rollout status <service>`),
 * so both refuse the same names with the same message. It becomes part of workflow ids, replica
 * ids and the router's paths.
 */
export const serviceNameSchema = z
  .string({ error: expected('a service name') })
  .regex(/^[a-z][a-z0-9-]{0,39}$/, { error: expected('lowercase letters, digits and "-", starting with a letter, at most 40 characters') });

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

// `{from_env: NAME}` or `{from_file: /absolute/path}`: resolved on the worker at launch only.
const secretRef = z.union([
  z.strictObject({ from_env: z.string().regex(ENV_NAME, { error: expected('an environment variable name of the worker') }) }),
  z.strictObject({
    from_file: z
      .string()
      .startsWith('/', { error: expected('an absolute path of a file on the worker') })
      .max(L.shortText, { error: `expected a path of at most ${L.shortText} characters` }),
  }),
]);

export const serviceSpecSchema = z
  .strictObject({
    name: serviceNameSchema,
    replicas: wholeIn(1, L.replicas).default(1),
    run: z
      .string({ error: expected('a shell command') })
      .refine((r) => r.trim() !== '', { error: expected('a non-empty shell command') })
      .refine((r) => utf8Bytes(r) <= L.runBytes, { error: `expected a shell command of at most ${L.runBytes / 1024} KiB` })
      .refine((r) => !r.includes('\0'), { error: 'expected a shell command without NUL characters' }),
    env: z
      .record(
        z.string().regex(ENV_NAME, { error: (iss: Issue) => `expected an environment variable name (letters, digits and "_", not starting with a digit), got ${showValue(iss.input)}` }),
        z.union(
          [
            z
              .union([z.string(), z.number(), z.boolean()])
              .transform(String)
              .refine((v) => utf8Bytes(v) <= L.envValueBytes, { error: `expected a value of at most ${L.envValueBytes / 1024} KiB (a process environment string may not be larger than 128 KiB)` })
              .refine((v) => !v.includes('\0'), { error: 'expected a value without NUL characters (a process environment cannot hold them)' }),
            secretRef,
          ],
          { error: expected('a string, number or boolean value, or a secret reference {from_env: NAME} or {from_file: /path}') },
        ),
      )
      .refine((env) => Object.keys(env).length <= L.envEntries, { error: `expected at most ${L.envEntries} variables` })
      .default({}),
    resources: resources.prefault({}),
    readiness_probe: readinessProbe.prefault({}),
    rollout: rollout.prefault({}),
  })
  .superRefine((spec, ctx) => {
    awsResourceIssues(spec).forEach((issue) => ctx.addIssue({ code: 'custom', ...issue }));
    // A reference counts as its text; its value is checked at launch.
    const envBytes = Object.entries(spec.env).reduce((n, [k, v]) => n + utf8Bytes(k) + utf8Bytes(typeof v === 'string' ? v : JSON.stringify(v)) + 2, utf8Bytes(spec.run));
    if (envBytes > L.envTotalBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['env'],
        message: `env and run together are ${Math.ceil(envBytes / 1024)} KiB: expected at most ${L.envTotalBytes / 1024} KiB (a replica's process could not be started with more)`,
      });
    }
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

/**
 * The aws fields make sense only with `provider: aws`, and an aws replica's environment is
 * written into its instance's user data, which anyone allowed `ec2:DescribeInstanceAttribute`
 * can read: secret references are refused there until they are resolved on the instance.
 */
function awsResourceIssues(spec: ServiceSpec): { path: (string | number)[]; message: string }[] {
  const r = spec.resources;
  const issues: { path: (string | number)[]; message: string }[] = [];
  if (r.provider !== 'aws') {
    for (const field of AWS_ONLY_RESOURCES) {
      if (r[field] !== undefined) issues.push({ path: ['resources', field], message: `${field} is read only with provider: aws (provider is ${r.provider})` });
    }
    return issues;
  }
  if (r.spot_fallback_on_demand !== undefined && r.spot !== true) {
    issues.push({ path: ['resources', 'spot_fallback_on_demand'], message: 'spot_fallback_on_demand needs spot: true' });
  }
  if (r.instance_type === undefined && r.accelerators === undefined && r.launch_template === undefined) {
    issues.push({ path: ['resources'], message: 'provider aws needs accelerators (the catalog chooses the instance type), instance_type or launch_template' });
  }
  for (const [name, value] of Object.entries(spec.env)) {
    if (isSecretRef(value)) {
      issues.push({
        path: ['env', name],
        message:
          'secret references are not supported with provider: aws yet (the value would be written into the instance\'s user data, which ec2:DescribeInstanceAttribute reads in plain text); give the instance an IAM role that reads it itself',
      });
    }
  }
  return issues;
}

// Compile-time proof that the schema's output is the ServiceSpec type, both ways.
type SchemaOutput = z.output<typeof serviceSpecSchema>;
export const schemaMatchesType: [SchemaOutput] extends [ServiceSpec] ? ([ServiceSpec] extends [SchemaOutput] ? true : false) : false = true;
