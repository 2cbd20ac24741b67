/**
 * One child process of the dev stack: output to a log file, optional restart when it dies
 * unexpectedly, optional "ready" line to wait for, graceful stop (SIGTERM, then SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';

export interface SupervisedOptions {
  logFile: string;
  restart: boolean;
  env?: Record<string, string>;
  /** Variables of this process's environment that the child must not inherit (those in `env` are set all the same). */
  dropEnv?: RegExp;
  /** A stdout line matching this marks the process ready. */
  readyLine?: RegExp;
  stopGraceMs?: number;
  /** Called with the pid after every (re)start. */
  onStart?: (pid: number | undefined) => void;
  /**
   * Give the child a stdin pipe that only this process holds: when this process dies, even by
   * SIGKILL, the pipe closes, and a child that watches its stdin (the router, the worker, the
   * guardian around Temporal) stops. Otherwise stdin is /dev/null.
   */
  stdinPipe?: boolean;
}

export class Supervised {
  private child?: ChildProcess;
  private stopping = false;
  private isReady = false;
  private readyWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private restarts: number[] = [];
  private restartEnabled: boolean;
  exited = false;

  constructor(
    readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly opts: SupervisedOptions,
  ) {
    this.restartEnabled = opts.restart;
  }

  /**
   * Restart it when it dies, from now on: for a server that is restarted only once it has been up
   * (one that cannot start at all would otherwise be restarted until it "keeps dying").
   */
  restartFromNowOn(): void {
    this.restartEnabled = true;
  }

  get logFile(): string {
    return this.opts.logFile;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const log = fs.openSync(this.opts.logFile, 'a');
    const child = spawn(this.command, this.args, {
      env: { ...inherited(process.env, this.opts.dropEnv), ...this.opts.env },
      stdio: [this.opts.stdinPipe ? 'pipe' : 'ignore', 'pipe', log],
      // Own process group: a Ctrl-C in the terminal reaches only the stack, which stops its
      // children in order (worker first, so no activity is cut mid-way).
      detached: true,
    });
    fs.closeSync(log);
    this.child = child;
    // If the stack itself dies, its children must not outlive it.
    // The whole group: a guardian's command (Temporal) with it.
    const killOnExit = () => child.exitCode === null && child.signalCode === null && killGroup(child);
    process.once('exit', killOnExit);
    child.once('exit', () => process.off('exit', killOnExit));
    this.opts.onStart?.(child.pid);
    this.exited = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      fs.appendFileSync(this.opts.logFile, chunk);
      if (!this.isReady && this.opts.readyLine?.test(chunk.toString())) {
        this.isReady = true;
        for (const w of this.readyWaiters.splice(0)) w.resolve();
      }
    });
    child.on('exit', (code, signal) => {
      this.exited = true;
      // Dying before it was ever ready is a start-up failure: whoever waits is told at once.
      if (!this.isReady) {
        const why = lastLines(this.opts.logFile, 3);
        for (const w of this.readyWaiters.splice(0)) {
          w.reject(new Error(`${this.name} exited (${signal ?? code}) before it was ready${why ? `:\n    ${why.replace(/\n/g, '\n    ')}` : ''}\n  (log: ${this.opts.logFile})`));
        }
      }
      if (this.stopping || this.child !== child) return;
      process.stderr.write(`[dev] ${this.name} exited (${signal ?? code}); see ${this.opts.logFile}\n`);
      if (!this.restartEnabled) return;
      // What is left of its process group goes first: a guardian killed on its own leaves the
      // server under it running, which would hold the ports the restarted one needs.
      killGroup(child);
      const now = Date.now();
      this.restarts = [...this.restarts.filter((t) => now - t < 60_000), now];
      if (this.restarts.length > 5) {
        process.stderr.write(`[dev] ${this.name} keeps dying; not restarting it again\n`);
        return;
      }
      setTimeout(() => {
        if (this.stopping) return;
        process.stderr.write(`[dev] restarting ${this.name}\n`);
        this.isReady = false;
        this.start();
      }, 1000);
    });
  }

  ready(timeoutMs: number): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} not ready within ${timeoutMs / 1000}s; see ${this.opts.logFile}`)), timeoutMs);
      this.readyWaiters.push({
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
    });
  }

  /** No restarts from now on (the stack is shutting down). */
  shuttingDown(): void {
    this.stopping = true;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    // Past the grace period: the whole process group (a guardian and the command under it).
    const timer = setTimeout(() => killGroup(child), this.opts.stopGraceMs ?? 10_000);
    await gone;
    clearTimeout(timer);
  }
}

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL'); // detached: the child leads its own process group
  } catch {
    child.kill('SIGKILL');
  }
}

/** The last non-empty lines of a log file (a child's own words on why it stopped), or ''. */
export function lastLines(file: string, count: number): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.split('\n').filter((l) => l.trim() !== '').slice(-count).join('\n');
  } catch {
    return '';
  }
}

function inherited(env: NodeJS.ProcessEnv, drop: RegExp | undefined): NodeJS.ProcessEnv {
  if (!drop) return env;
  return Object.fromEntries(Object.entries(env).filter(([name]) => !drop.test(name)));
}
