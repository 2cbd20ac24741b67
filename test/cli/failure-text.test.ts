import { NamespaceNotFoundError, ServiceError } from '@temporalio/client';
import { describeFailure } from '../../src/cli/failure-text';
import { CliError } from '../../src/cli/errors';
import { isUnreachable } from '../../src/cli/unreachable';

/** A gRPC error as @grpc/grpc-js makes them (code, details), wrapped the way the SDK wraps it. */
function grpcError(code: number, details: string): ServiceError {
  const cause = Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });
  return new ServiceError(`Failed to do the thing`, { cause });
}

describe('describeFailure', () => {
  test.each([
    ['UNAVAILABLE', grpcError(14, 'No connection established'), 3, /^Temporal became unreachable/],
    ['DEADLINE_EXCEEDED', grpcError(4, 'Deadline exceeded'), 3, /^Temporal became unreachable/],
    // A query no worker answers (the worker stopped): Temporal is fine, the message says what is likely.
    ['a query no worker answers', new ServiceError('Failed to query Workflow', { cause: Object.assign(new Error('4 DEADLINE_EXCEEDED: context deadline exceeded'), { code: 4, details: 'context deadline exceeded', metadata: {} }) }), 3, /^no answer to the query in time: no worker is running the workflow/],
    ['FAILED_PRECONDITION', grpcError(9, 'Workflow is not ready to handle updates'), 1, /^Temporal refused the request: Workflow is not ready to handle updates \(the workflow has not been run by a worker yet: is `rollout worker`/],
    ['NOT_FOUND', grpcError(5, 'workflow not found for ID: x'), 1, /^Temporal refused the request: workflow not found for ID: x$/],
    // Credentials refused (an API key Temporal does not take, or one without access): exit 3, as an unreachable Temporal.
    ['PERMISSION_DENIED', grpcError(7, 'Request unauthorized.'), 3, /^Temporal refused the credentials \(PERMISSION_DENIED: Request unauthorized\.\): check TEMPORAL_API_KEY/],
    ['UNAUTHENTICATED', grpcError(16, 'Jwt is expired'), 3, /^Temporal refused the credentials \(UNAUTHENTICATED: Jwt is expired\)/],
    ['a namespace the server lacks', new NamespaceNotFoundError('nope'), 2, /^Temporal has no namespace "nope": check --namespace, TEMPORAL_NAMESPACE or the profile's namespace$/],
    ['a CLI error', new CliError('invalid spec', 2), 2, /^invalid spec$/],
    ['a bare connection refusal', new Error('connect ECONNREFUSED 127.0.0.1:7233'), 3, /ECONNREFUSED/],
    ['anything else', new TypeError('x is not a function'), 1, /^x is not a function \(set ROLLOUT_DEBUG=1 for the stack trace\)$/],
  ])('%s', (_name, err, exitCode, message) => {
    const failure = describeFailure(err);
    expect(failure.exitCode).toBe(exitCode);
    expect(failure.message).toMatch(message);
  });

  test('a ServiceError that is a refusal is not "unreachable" (the old check matched the class name)', () => {
    expect(isUnreachable(grpcError(9, 'precondition'))).toBe(false);
    expect(isUnreachable(grpcError(14, 'unavailable'))).toBe(true);
  });

  test('ROLLOUT_DEBUG=1 shows the stack trace', () => {
    const before = process.env.ROLLOUT_DEBUG;
    process.env.ROLLOUT_DEBUG = '1';
    try {
      expect(describeFailure(new TypeError('boom')).message).toMatch(/^TypeError: boom\n\s+at /);
    } finally {
      if (before === undefined) delete process.env.ROLLOUT_DEBUG;
      else process.env.ROLLOUT_DEBUG = before;
    }
  });
});
