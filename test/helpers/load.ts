/**
 * A bounded load generator for zero-downtime tests: several concurrent clients send plain and
 * streaming completions through the router until stopped (or a request cap is reached). A
 * request fails on a non-200 status, a network error, or a stream that ends without [DONE].
 */
export interface LoadReport {
  requests: number;
  streams: number;
  failures: string[];
  /** Model versions that answered, with counts. */
  versions: Record<string, number>;
}

export interface RunningLoad {
  stop(): Promise<LoadReport>;
}

export function startLoad(serviceUrl: string, opts: { clients?: number; maxRequests?: number } = {}): RunningLoad {
  const report: LoadReport = { requests: 0, streams: 0, failures: [], versions: {} };
  const maxRequests = opts.maxRequests ?? 20_000;
  let stopped = false;

  const one = async (stream: boolean): Promise<void> => {
    const path = stream ? '/v1/chat/completions' : '/v1/completions';
    const body = stream ? { messages: [{ role: 'user', content: 'hi' }], stream: true, max_tokens: 6 } : { prompt: 'hi', max_tokens: 4 };
    try {
      const res = await fetch(serviceUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const text = await res.text();
      const version = res.headers.get('x-model-version') ?? '?';
      report.versions[version] = (report.versions[version] ?? 0) + 1;
      if (res.status !== 200) report.failures.push(`${path} → HTTP ${res.status}: ${text.slice(0, 200)}`);
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
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(clients);
      return report;
    },
  };
}
