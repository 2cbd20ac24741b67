/**
 * What an EC2 error means for the provider, from its code alone (`err.name`: client-ec2 has no
 * modelled error classes). Pure.
 *
 *   InsufficientInstanceCapacity  → capacity, this AZ      (try the next subnet)
 *   VcpuLimitExceeded             → capacity, the region   (a quota: the other AZs share it; try the next type)
 *   RequestLimitExceeded          → throttled              (back off with jitter, then a retryable ThrottlingError)
 *   InvalidAMIID.NotFound         → config                 (non-retryable: the spec or the worker's config is wrong)
 *   AuthFailure                   → credentials            (non-retryable)
 *   InvalidInstanceID.NotFound    → not found              (terminate: already gone)
 *   InternalError, 503, ECONNRESET → transient             (retryable)
 *
 * `Unsupported` (this AZ does not offer that type or configuration) is a capacity error of the
 * AZ; `UnsupportedOperation` and `InvalidInstanceType` are configuration errors: the names are
 * close, the meanings are not.
 */
import { ProviderError } from '../types';

export type Ec2ErrorKind =
  | { kind: 'capacity'; scope: 'az' | 'region' }
  | { kind: 'throttled' }
  | { kind: 'config'; type: 'InvalidRequest' | 'CredentialsError' }
  | { kind: 'notFound' }
  | { kind: 'transient' };

const CAPACITY_AZ = new Set(['InsufficientInstanceCapacity', 'InsufficientHostCapacity', 'InsufficientFreeAddressesInSubnet', 'Unsupported', 'SpotMaxPriceTooLow']);
const CAPACITY_REGION = new Set(['InstanceLimitExceeded', 'VcpuLimitExceeded', 'MaxSpotInstanceCountExceeded']);
const THROTTLED = new Set(['RequestLimitExceeded', 'Throttling', 'ThrottlingException', 'RequestThrottled', 'RequestThrottledException', 'TooManyRequestsException']);
const CREDENTIALS = new Set(['AuthFailure', 'UnauthorizedOperation', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'UnrecognizedClientException', 'ExpiredToken', 'ExpiredTokenException', 'CredentialsProviderError', 'MissingAuthenticationToken']);
const CONFIG_EXACT = new Set([
  'InvalidInstanceType',
  'UnsupportedOperation',
  'InvalidParameterValue',
  'InvalidParameterCombination',
  'InvalidParameter',
  'MissingParameter',
  'InvalidBlockDeviceMapping',
  'InvalidUserData.Malformed',
  'IdempotentParameterMismatch',
  'OptInRequired',
  'Blocked',
  'PendingVerification',
  'InvalidSubnet',
]);
const CONFIG_PREFIXES = ['InvalidAMIID.', 'InvalidSubnetID.', 'InvalidGroup.', 'InvalidGroupId.', 'InvalidSecurityGroupID.', 'InvalidKeyPair.', 'InvalidLaunchTemplateId.', 'InvalidLaunchTemplateName.', 'InvalidInstanceType.'];
const NOT_FOUND = new Set(['InvalidInstanceID.NotFound']);

/** The EC2 error code of an SDK error ('' for something that is not an error object). */
export function errorCode(err: unknown): string {
  return err instanceof Error ? err.name : '';
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

export function classifyEc2Error(err: unknown): Ec2ErrorKind {
  const code = errorCode(err);
  if (CAPACITY_AZ.has(code)) return { kind: 'capacity', scope: 'az' };
  if (CAPACITY_REGION.has(code)) return { kind: 'capacity', scope: 'region' };
  if (THROTTLED.has(code)) return { kind: 'throttled' };
  if (NOT_FOUND.has(code)) return { kind: 'notFound' };
  if (CREDENTIALS.has(code)) return { kind: 'config', type: 'CredentialsError' };
  if (CONFIG_EXACT.has(code) || CONFIG_PREFIXES.some((p) => code.startsWith(p))) return { kind: 'config', type: 'InvalidRequest' };
  const status = httpStatus(err);
  // An answer EC2 gave with a client-side status and a code we do not know: the same request
  // would be refused again, so fail fast with its message rather than retry until the deadline.
  if (status !== undefined && status >= 400 && status < 500) return { kind: 'config', type: 'InvalidRequest' };
  // 5xx, or no answer at all (connection refused or reset, timeout): try again later.
  return { kind: 'transient' };
}

/** What to tell the user besides EC2's own message. */
function hintFor(code: string): string {
  if (code.startsWith('InvalidAMIID.')) return 'check resources.image_id (or image_id in the worker\'s AWS config): the AMI must exist in the worker\'s region and be shared with its account';
  if (code.startsWith('InvalidSubnetID.') || code === 'InvalidSubnet') return 'check subnets in the worker\'s AWS config (ROLLOUT_AWS_CONFIG): they must exist in its region';
  if (code.startsWith('InvalidGroup') || code.startsWith('InvalidSecurityGroupID.')) return 'check security_groups in the worker\'s AWS config (ROLLOUT_AWS_CONFIG): they must be in the subnets\' VPC';
  if (code.startsWith('InvalidKeyPair.')) return 'check key_name in the worker\'s AWS config';
  if (code.startsWith('InvalidLaunchTemplate')) return 'check resources.launch_template';
  if (code === 'InvalidInstanceType' || code.startsWith('InvalidInstanceType.')) return 'check resources.instance_type: no such EC2 instance type in the worker\'s region';
  if (code === 'UnauthorizedOperation') return 'the worker\'s AWS identity lacks a permission: see deploy/aws/iam-policy.json';
  if (code === 'CredentialsProviderError') return 'no AWS credentials: give the worker credentials the standard AWS way (environment, AWS_PROFILE, SSO, an instance or task role)';
  if (['AuthFailure', 'InvalidClientTokenId', 'SignatureDoesNotMatch', 'UnrecognizedClientException', 'ExpiredToken', 'ExpiredTokenException', 'MissingAuthenticationToken'].includes(code)) return 'the worker\'s AWS credentials were refused: check them (and the clock)';
  if (code === 'OptInRequired' || code === 'PendingVerification' || code === 'Blocked') return 'the AWS account cannot use EC2 in this region yet';
  return '';
}

/** An error's one-line description: `InvalidAMIID.NotFound: The image id '[ami-1]' does not exist`. */
export function describeEc2Error(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return code && code !== 'Error' && !message.startsWith(code) ? `${code}: ${message}` : message;
}

/**
 * The ProviderError for an EC2 error outside the launch fallback (which gathers capacity
 * errors itself): `what` says what the provider was doing ("RunInstances for llm-v1-r1").
 */
export function providerErrorFrom(err: unknown, what: string): ProviderError {
  if (err instanceof ProviderError) return err;
  const kind = classifyEc2Error(err);
  const text = describeEc2Error(err);
  const hint = hintFor(errorCode(err));
  const message = `${what}: ${text}${hint ? ` (${hint})` : ''}`;
  switch (kind.kind) {
    case 'config':
      return new ProviderError(message, kind.type, false);
    case 'capacity':
      return new ProviderError(message, 'CapacityError', true);
    case 'throttled':
      return new ProviderError(message, 'ThrottlingError', true);
    default:
      return new ProviderError(message, 'ProviderError', true);
  }
}
