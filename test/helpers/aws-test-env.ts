/**
 * The SDK's standard variables pointed at a moto server on loopback (endpoint, dummy credentials,
 * no instance metadata service, no profile of the machine's own), for code that builds its own
 * clients (the AWS provider). Any endpoint that is not loopback is refused: nothing a test does
 * can reach amazonaws.com or 169.254.169.254.
 */
/** Only loopback endpoints: a test that would reach anything else fails at once. */
export function assertLoopback(url: string | undefined): string {
  if (!url) throw new Error('AWS_ENDPOINT_URL is not set: AWS tests must point the SDK at moto on loopback');
  const host = new URL(url).hostname;
  if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== 'localhost' && host !== '[::1]') throw new Error(`AWS endpoint ${url} is not loopback`);
  return url;
}

/**
 * Sets the SDK's standard variables for moto at `url` (and returns a function restoring them).
 * `variable`: AWS_ENDPOINT_URL (every service) or AWS_ENDPOINT_URL_EC2 (EC2 only).
 */
export function awsTestEnv(url: string, variable: 'AWS_ENDPOINT_URL' | 'AWS_ENDPOINT_URL_EC2' = 'AWS_ENDPOINT_URL'): () => void {
  assertLoopback(url);
  const names = ['AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_EC2', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_EC2_METADATA_DISABLED', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE'];
  const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
  for (const n of names) delete process.env[n];
  Object.assign(process.env, {
    [variable]: url,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    // No profile of the machine's own: the chain stops at the variables above.
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  });
  return () => {
    for (const n of names) {
      if (saved[n] === undefined) delete process.env[n];
      else process.env[n] = saved[n];
    }
  };
}
