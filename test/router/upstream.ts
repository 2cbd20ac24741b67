/**
 * Tiny upstream servers for the router tests. Each answers `{name, url, body}` as JSON, except:
 * `/slow` holds the answer 400 ms; `/sse` streams 5 events 100 ms apart; `/first-chunk` answers
 * with the first request chunk; `/headers` answers the request headers; `/endless` streams an event every 50 ms until the client leaves;
 * `/hang` never answers; `/gated-sse` sends one event, then the other four only after `release()`.
 * With `resetEverything`, it destroys every connection without answering (a replica that dies).
 * With `errorEvery: n`, every n-th request is answered 500 (a canary that fails some requests).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Upstream {
  url: string;
  server: http.Server;
  /** Requests seen, by path. */
  seen: string[];
  /** Resolves when an `/endless` or `/hang` response was closed by the router (the client went away). */
  endlessClosed: Promise<void>;
  /** Lets every `/gated-sse` response send the rest of its events and end. */
  release(): void;
}

const started: http.Server[] = [];

export async function startUpstream(name: string, opts: { resetEverything?: boolean; errorEvery?: number } = {}): Promise<Upstream> {
  const seen: string[] = [];
  let markEndlessClosed!: () => void;
  const endlessClosed = new Promise<void>((r) => (markEndlessClosed = r));
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    if (opts.resetEverything) {
      req.socket.destroy();
      return;
    }
    if (opts.errorEvery && seen.length % opts.errorEvery === 0) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ name, error: 'scripted failure' }));
      return;
    }
    if (req.url === '/sse' || req.url === '/endless') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let i = 0;
      const endless = req.url === '/endless';
      const timer = setInterval(() => {
        res.write(`data: ${name}-${i}\n\n`);
        if (++i === 5 && !endless) {
          clearInterval(timer);
          res.end();
        }
      }, endless ? 50 : 100);
      res.on('close', () => {
        clearInterval(timer);
        if (endless) markEndlessClosed();
      });
      return;
    }
    if (req.url === '/gated-sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${name}-0\n\n`);
      void released.then(() => {
        for (let i = 1; i < 5; i++) res.write(`data: ${name}-${i}\n\n`);
        res.end();
      });
      return;
    }
    if (req.url === '/hang') {
      res.on('close', () => markEndlessClosed());
      return;
    }
    if (req.url === '/headers') {
      res.end(JSON.stringify(req.headers));
      return;
    }
    if (req.url === '/first-chunk') {
      req.once('data', (c) => res.end(`got:${c}`));
      return;
    }
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const reply = () => res.end(JSON.stringify({ name, url: req.url, body }));
      if (req.url === '/slow') setTimeout(reply, 400);
      else reply();
    });
  });
  started.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, seen, endlessClosed, release };
}

/** The upstream's base URL only. */
export async function upstream(name: string): Promise<string> {
  return (await startUpstream(name)).url;
}

export async function stopUpstreams(): Promise<void> {
  await Promise.all(
    started.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  );
}
