/**
 * An open-loop client for the reaction part: one request through the router every `intervalMs`
 * (sent on schedule, whether or not the earlier ones have answered), each recorded with the
 * time its response headers arrived and the model version they name (`x-model-version`, which
 * examples/model-server puts on every answer, its 5xx too). Bounded by a request count and a
 * duration. Times are epoch milliseconds with sub-millisecond resolution, on the clock the
 * Temporal server and the replicas stamp their events with (the same machine).
 */
'use strict';
const http = require('node:http');
const { performance } = require('node:perf_hooks');

const nowMs = () => performance.timeOrigin + performance.now();

/**
 * Starts sending GET `<serviceUrl>/v1/models`. `stop()` ends it (waiting for the requests in
 * flight, each bounded by `requestTimeoutMs`) and resolves to the samples
 * [{sentAt, at, status, version}] (status 0 and version null: no answer, `error` says why).
 */
function startVersionLoad(serviceUrl, { intervalMs = 5, maxRequests = 20_000, maxMs = 120_000, requestTimeoutMs = 5_000 } = {}) {
  const url = new URL(`${serviceUrl}/v1/models`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const samples = [];
  const inFlight = new Set();
  const startedAt = nowMs();
  let stopped = false;

  const one = () => {
    const sentAt = nowMs();
    const done = new Promise((resolve) => {
      const sample = { sentAt, at: NaN, status: 0, version: null };
      const req = http.get(url, { agent, timeout: requestTimeoutMs }, (res) => {
        sample.at = nowMs();
        sample.status = res.statusCode ?? 0;
        const v = res.headers['x-model-version'];
        sample.version = typeof v === 'string' ? v : null;
        res.resume();
        res.on('end', resolve);
        res.on('error', resolve);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer in ${requestTimeoutMs} ms`)));
      req.on('error', (err) => {
        if (Number.isNaN(sample.at)) {
          sample.at = nowMs();
          sample.error = err.message;
        }
        resolve();
      });
      samples.push(sample);
    });
    inFlight.add(done);
    void done.then(() => inFlight.delete(done));
  };

  // A fixed schedule, not one timer per gap: a late tick sends what it owes, so the rate holds
  // even when the event loop is busy for a moment.
  let sent = 0;
  const timer = setInterval(() => {
    const due = Math.floor((nowMs() - startedAt) / intervalMs) + 1;
    while (!stopped && sent < due && sent < maxRequests && nowMs() - startedAt < maxMs) {
      sent += 1;
      one();
    }
  }, Math.max(1, Math.floor(intervalMs / 2)));

  return {
    /** The samples so far whose answer came (a copy). */
    answered: () => samples.filter((s) => !Number.isNaN(s.at)),
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...inFlight]);
      agent.destroy();
      return samples;
    },
  };
}

module.exports = { startVersionLoad, nowMs };
