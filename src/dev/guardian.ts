/**
 * `node guardian.js <command> [args…]`: runs a command that cannot watch its parent itself (the
 * Temporal CLI) so that it stops when the dev stack dies, even by SIGKILL. The stack holds the
 * write end of this process's stdin; when the stack is gone the pipe closes and the command gets
 * SIGTERM (SIGKILL 5 s later). SIGTERM and SIGINT sent here are passed on; the exit code is the
 * command's. Output is the command's own (inherited).
 */
import { spawn } from 'node:child_process';
import os from 'node:os';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: guardian <command> [args…]\n');
  process.exit(2);
}

const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
const running = () => child.exitCode === null && child.signalCode === null;
const stop = (signal: NodeJS.Signals) => {
  if (running()) child.kill(signal);
};

for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => stop(signal));
process.stdin.on('end', () => {
  stop('SIGTERM');
  setTimeout(() => stop('SIGKILL'), 5000).unref();
});
process.stdin.on('error', () => undefined);
process.stdin.resume();

child.on('error', (err) => {
  process.stderr.write(`guardian: cannot run ${command}: ${err.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => {
  process.exit(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1));
});
