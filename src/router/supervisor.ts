/**
 * Keeps one router running, as the dev stack needs it:
 *
 *   - a router that dies (a crash, a SIGKILL) is started again at once on the same ports, with
 *     the route table it persisted (ROUTER_STATE_PATH): what was in flight on it and what came
 *     while no process listened is lost (see the README's "Router" for the figures);
 *   - `handover()` replaces it with a new process (the same build or another) with nothing lost:
 *     the new one takes the sockets, routes and counters over (server.ts, handover.rs) and the
 *     old one, now "retiring", drains and exits by itself; its exit is expected, not a crash.
 *
 * `onStart` is told of every new process (the stack rewrites stack.json with its pid).
 */
import type pino from 'pino';
import { routerBinary } from './binary';
import { launchRouter, type LaunchOptions, type RunningRouter } from './server';

export interface RouterSupervisorOptions {
  /** The router's ROUTER_* settings; fixed ports (a restart must come back on the same ones). */
  env: Record<string, string>;
  logFile?: string;
  logger?: pino.Logger;
  detached?: boolean;
  /** Told of every router process started (first start, restart, handover). */
  onStart?: (router: RunningRouter, why: 'start' | 'restart' | 'handover') => void;
  /** Told of what happens (a crash, a restart, a handover), one line each. */
  say?: (line: string) => void;
}

/** More restarts than this within a minute: the router keeps dying, stop trying. */
const MAX_RESTARTS_PER_MINUTE = 10;

export class RouterSupervisor {
  private router?: RunningRouter;
  private readonly retiring = new Set<RunningRouter>();
  private stopping = false;
  private handingOver?: Promise<RunningRouter>;
  private restartTimes: number[] = [];
  /** Restarts after a crash so far. */
  restarts = 0;

  constructor(private readonly opts: RouterSupervisorOptions) {}

  get current(): RunningRouter | undefined {
    return this.router;
  }

  get pid(): number | undefined {
    return this.router?.pid;
  }

  private launchOptions(): LaunchOptions {
    return { logFile: this.opts.logFile, logger: this.opts.logger, detached: this.opts.detached };
  }

  async start(): Promise<RunningRouter> {
    const router = await launchRouter(this.opts.env, this.launchOptions());
    this.adopt(router, 'start');
    return router;
  }

  /**
   * A new router process takes this one's place with no request dropped; `binary` runs another
   * build (default: the router binary as found now, so a build replaced in place is an upgrade).
   * One at a time: a second call while one runs waits for it and hands over again.
   */
  async handover(opts: { binary?: string } = {}): Promise<RunningRouter> {
    const previous = this.handingOver;
    const next = (async () => {
      await previous?.catch(() => undefined);
      const old = this.router;
      if (!old || this.stopping) throw new Error('no router is running');
      // Marked first: the old process may exit as soon as the new one is ready.
      this.retiring.add(old);
      let router: RunningRouter;
      try {
        router = await old.handover({ ...this.launchOptions(), binary: opts.binary ?? routerBinary() });
      } catch (err) {
        this.retiring.delete(old);
        // The old one went on serving (or died meanwhile: then its exit restarts it).
        if (this.router === old && (await settled(old.exited))) this.restartSoon(old);
        throw err;
      }
      void old.exited.then(() => this.retiring.delete(old));
      this.opts.say?.(`router handed over: pid ${old.pid} (${old.build}) → pid ${router.pid} (${router.build}); pid ${old.pid} drains its requests in flight and exits`);
      this.adopt(router, 'handover');
      return router;
    })();
    this.handingOver = next;
    return next;
  }

  /** Stops the router and any that is still draining after a handover. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.handingOver?.catch(() => undefined);
    await Promise.all([this.router, ...this.retiring].filter((r): r is RunningRouter => r !== undefined).map((r) => r.close()));
  }

  private adopt(router: RunningRouter, why: 'start' | 'restart' | 'handover'): void {
    this.router = router;
    this.opts.onStart?.(router, why);
    void router.exited.then(({ code, signal }) => {
      if (this.stopping || this.router !== router || this.retiring.has(router)) return;
      this.opts.say?.(`router (pid ${router.pid}) exited (${signal ?? code}); restarting it with its route table from disk`);
      this.restartSoon(router);
    });
  }

  private restartSoon(dead: RunningRouter): void {
    const now = Date.now();
    this.restartTimes = [...this.restartTimes.filter((t) => now - t < 60_000), now];
    if (this.restartTimes.length > MAX_RESTARTS_PER_MINUTE) {
      this.opts.say?.('router keeps dying; not restarting it again');
      return;
    }
    // At once the first time: every moment without a listener refuses connections. Then slower.
    const delayMs = Math.min(5_000, this.restartTimes.length <= 1 ? 0 : 100 * 2 ** (this.restartTimes.length - 2));
    setTimeout(() => {
      if (this.stopping || this.router !== dead) return;
      launchRouter(this.opts.env, this.launchOptions()).then(
        (router) => {
          if (this.stopping) {
            void router.close();
            return;
          }
          this.restarts += 1;
          this.adopt(router, 'restart');
        },
        (err: Error) => {
          this.opts.say?.(`router restart failed: ${err.message}`);
          this.restartSoon(dead);
        },
      );
    }, delayMs);
  }
}

/** Whether the promise has settled already (without waiting for it). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  return (await Promise.race([promise, Promise.resolve(marker)])) !== marker;
}
