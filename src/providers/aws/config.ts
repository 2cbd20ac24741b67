/**
 * The worker's AWS configuration: what belongs to the account and its network rather than to a
 * service (the VPC's subnets, security groups, the instance profile, a default AMI). A YAML or
 * JSON file named by `ROLLOUT_AWS_CONFIG`; every problem is reported with its field path and
 * what was expected, like the spec's. Credentials are never in it: they come from the standard
 * AWS chain (environment, shared config/SSO, web identity, instance or container role).
 *
 *   region: us-east-1                       # optional: else AWS_REGION / AWS_DEFAULT_REGION / ~/.aws/config
 *   subnets: [subnet-0aa…, subnet-0bb…]     # one per AZ, tried in this order on a stockout
 *   security_groups: [sg-0cc…]              # optional: else the VPC's default group
 *   instance_profile: gpu-replica           # optional: a name or an ARN
 *   image_id: ami-0dd…                      # optional: for specs that name neither an AMI nor a launch template
 *   key_name: ops                           # optional: an EC2 key pair for SSH
 *   tags: {team: ml-platform}               # optional: added to every instance
 */
import YAML from 'yaml';
import { z } from 'zod';
import { readBoundedFileSync } from '../../spec/read-file';
import { showValue } from '../../spec/show-value';
import type { SpecIssue } from '../../spec/types';
import { TAG_PREFIX } from './tags';

/** The environment variable naming the file. */
export const AWS_CONFIG_ENV = 'ROLLOUT_AWS_CONFIG';
const MAX_CONFIG_BYTES = 64 * 1024;

type Issue = { input?: unknown };
const expected = (what: string) => (iss: Issue) => `expected ${what}, got ${showValue(iss.input)}`;
const id = (prefix: string, what: string) =>
  z.string({ error: expected(`${what} like "${prefix}-0123456789abcdef0"`) }).regex(new RegExp(`^${prefix}-[0-9a-f]{8,17}$`), { error: expected(`${what} like "${prefix}-0123456789abcdef0"`) });
const distinct = (items: string[]) => new Set(items).size === items.length;

export const awsWorkerConfigSchema = z.strictObject({
  region: z.string({ error: expected('an AWS region like "us-east-1"') }).regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, { error: expected('an AWS region like "us-east-1"') }).optional(),
  subnets: z
    .array(id('subnet', 'a subnet id'), { error: expected('a list of subnet ids, one per availability zone') })
    .min(1, { error: 'expected at least one subnet id (one per availability zone, tried in order)' })
    .max(32, { error: 'expected at most 32 subnets' })
    .refine(distinct, { error: 'expected each subnet once' }),
  security_groups: z
    .array(id('sg', 'a security group id'), { error: expected('a list of security group ids') })
    .min(1, { error: 'expected at least one security group id (or leave the field out for the VPC default)' })
    .max(5, { error: 'expected at most 5 security groups (EC2 allows 5 per network interface)' })
    .refine(distinct, { error: 'expected each security group once' })
    .optional(),
  instance_profile: z
    .string({ error: expected('an IAM instance profile name or ARN') })
    .regex(/^(arn:aws[a-z-]*:iam::\d{12}:instance-profile\/[\w+=,.@/-]{1,128}|[\w+=,.@-]{1,128})$/, { error: expected('an IAM instance profile name or ARN (arn:aws:iam::123456789012:instance-profile/name)') })
    .optional(),
  image_id: z.string({ error: expected('an AMI id like "ami-0123456789abcdef0"') }).regex(/^ami-[0-9a-f]{8,17}$/, { error: expected('an AMI id like "ami-0123456789abcdef0"') }).optional(),
  key_name: z.string({ error: expected('an EC2 key pair name') }).min(1, { error: expected('an EC2 key pair name') }).max(255, { error: 'expected a key pair name of at most 255 characters' }).optional(),
  tags: z
    .record(
      z
        .string()
        .regex(/^[\w .:/=+@-]{1,128}$/, { error: (iss: Issue) => `expected a tag key (1–128 letters, digits, spaces and _ . : / = + - @), got ${showValue(iss.input)}` })
        .refine((k) => !k.startsWith(TAG_PREFIX) && !k.toLowerCase().startsWith('aws:'), { error: (iss: Issue) => `expected a tag key not starting with "${TAG_PREFIX}" or "aws:" (those are the provider's and AWS's own), got ${showValue(iss.input)}` }),
      z.string({ error: expected('a tag value') }).regex(/^[\w .:/=+@-]{0,256}$/, { error: expected('a tag value (at most 256 letters, digits, spaces and _ . : / = + - @)') }),
    )
    .refine((t) => Object.keys(t).length <= 40, { error: 'expected at most 40 tags (EC2 allows 50 per instance; the provider uses some)' })
    .optional(),
});

export type AwsWorkerConfig = z.output<typeof awsWorkerConfigSchema>;

export type AwsConfigResult = { ok: true; config: AwsWorkerConfig } | { ok: false; issues: SpecIssue[] };

/** A parsed value checked against the schema. Pure. */
export function validateAwsWorkerConfig(value: unknown): AwsConfigResult {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, issues: [{ path: '(root)', message: `expected a mapping of fields (subnets, security_groups, …), got ${showValue(value ?? null)}` }] };
  }
  const parsed = awsWorkerConfigSchema.safeParse(value);
  if (parsed.success) return { ok: true, config: parsed.data };
  return {
    ok: false,
    issues: parsed.error.issues.flatMap((issue) => {
      const path = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => ({ path: path ? `${path}.${key}` : key, message: 'unknown field' }));
      if (issue.code === 'invalid_key') return [{ path: path || '(root)', message: issue.issues[0]?.message ?? issue.message }];
      return [{ path: path || '(root)', message: issue.message }];
    }),
  };
}

/** YAML (or JSON, which is YAML) text → config. */
export function parseAwsWorkerConfig(text: string): AwsConfigResult {
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) return { ok: false, issues: doc.errors.map((e) => ({ path: '(yaml)', message: e.message.split('\n')[0] })) };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { ok: false, issues: [{ path: '(yaml)', message: err instanceof Error ? err.message : String(err) }] };
  }
  return validateAwsWorkerConfig(value);
}

/** The worker's config from the file `ROLLOUT_AWS_CONFIG` names, read bounded; undefined when the variable is unset. */
export function awsWorkerConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AwsConfigResult | undefined {
  const file = env[AWS_CONFIG_ENV];
  if (!file) return undefined;
  const read = readBoundedFileSync(file, MAX_CONFIG_BYTES);
  if (!read.ok) {
    const why = 'notRegular' in read ? `expected a regular file, it is ${read.notRegular}` : 'tooLarge' in read ? `expected a file of at most ${MAX_CONFIG_BYTES / 1024} KiB` : `cannot read it (${read.code})`;
    return { ok: false, issues: [{ path: '(file)', message: `${AWS_CONFIG_ENV} ${file}: ${why}` }] };
  }
  return parseAwsWorkerConfig(read.bytes.toString('utf8'));
}

/** Why the worker's AWS config (the file ROLLOUT_AWS_CONFIG names) is unusable, in one line; undefined when it is fine or not set. */
export function awsConfigProblem(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const result = awsWorkerConfigFromEnv(env);
  if (!result || result.ok) return undefined;
  const fileProblem = result.issues.find((i) => i.path === '(file)');
  return fileProblem ? fileProblem.message : `${AWS_CONFIG_ENV} ${env[AWS_CONFIG_ENV]}: ${result.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`;
}
