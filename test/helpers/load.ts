/**
 * A bounded load generator for zero-downtime tests: several concurrent clients send plain and
 * streaming completions through the router until stopped (or a request cap is reached). A
 * request fails on a non-200 status, a network error, or a stream that ends without [DONE].
 *
 * With `record5xxByVersion`, a 5xx that the model server itself answered (it carries the
 * model's `X-Model-Version`) is an application error of that version, not a failure: it is
 * counted in `errors5xx` and listed in `errorLog`. A 5xx without it (the router's own) still fails.
 */
export interface LoadReport {
  requests: number;
  streams: number;
  failures: string[];
  /** Model versions that answered, with counts. */
  versions: Record<string, number>;
  /** With `record5xxByVersion`: the model servers' own 5xx answers, by model version. */
  errors5xx: Record<string, number>;
  /** The same answers, each with the time its request was sent (ms since the epoch). */
  errorLog: { version: string; status: number; path: string; sentAt: number }[];
}

export interface RunningLoad {
  stop(): Promise<LoadReport>;
  /** A copy of the report so far (the load keeps running). */
  snapshot(): LoadReport;
  /**
   * Resolves once `check` holds for the report so far (polled every 20 ms), e.g. "v2 answered
   * 20 requests": a wait for what the test means instead of a fixed sleep. Rejects after
   * `timeoutMs`, a backstop for a hang only.
   */
  until(check: (report: LoadReport) => boolean, what: string, timeoutMs?: number): Promise<void>;
}

export interface LoadOptions {
  clients?: number;
  maxRequests?: number;
  record5xxByVersion?: boolean;
}

export function startLoad(serviceUrl: string, opts: LoadOptions = {}): RunningLoad {
  const report: LoadReport = { requests: 0, streams: 0, failures: [], versions: {}, errors5xx: {}, errorLog: [] };
  const maxRequests = opts.maxRequests ?? 20_000;
  let stopped = false;

  const one = async (stream: boolean): Promise<void> => {
    const path = stream ? '/v1/chat/completions' : '/v1/completions';
    const body = stream ? { messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 6 } : { prompt: 'hi', max_tokens: 4 };
    const sentAt = Date.now();
    try {
      const res = await fetch(serviceUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      const modelVersion = res.headers.get('x-model-version');
      const version = modelVersion ?? '?';
      report.versions[version] = (report.versions[version] ?? 0) + 1;
      if (opts.record5xxByVersion && res.status >= 500 && modelVersion !== null) {
        report.errors5xx[version] = (report.errors5xx[version] ?? 0) + 1;
        report.errorLog.push({ version, status: res.status, path, sentAt });
      } else if (res.status !== 200) report.failures.push(`${path} → HTTP ${res.status}: ${text.slice(0, 200)}`);
      else if (stream && !text.trimEnd().endsWith('data: [DONE]')) report.failures.push(`${path} → stream cut: ${text.slice(-100)}`);
    } catch (err) {
      report.failures.push(`${path} → ${(err as Error).message} ${(err as { cause?: Error }).cause?.message ?? ''}`);
    } finally {
      report.requests += 1;
      if (stream) report.streams += 1;
    }
  };

  const client = async (index: number): Promise<void> => {
    for (let i = 0; !stopped && report.requests < maxRequests; i++) await one((i + index) % 3 === 0);
  };
  const clients = Array.from({ length: opts.clients ?? 4 }, (_, i) => client(i));
  const copy = (): LoadReport => ({
    ...report,
    failures: [...report.failures],
    versions: { ...report.versions },
    errors5xx: { ...report.errors5xx },
    errorLog: [...report.errorLog],
  });
  const until = async (check: (r: LoadReport) => boolean, what: string, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (!check(report)) {
      if (Date.now() > deadline) throw new Error(`load: ${what} not seen within ${timeoutMs / 1000} s: ${JSON.stringify(copy())}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return {
    snapshot: copy,
    until,
    stop: async () => {
      stopped = true;
      await Promise.all(clients);
      return report;
    },
  };
}
