/**
 * The stack's ports are checked before anything is cleaned up or started: a port that another
 * program holds would otherwise leave half a stack running (or a worker joined to someone
 * else's Temporal, answering on that port).
 */
import net from 'node:net';

export interface NamedPort {
  port: number;
  /** The flag that sets it, for the message. */
  flag: string;
}

/** Whether `port` on `host` can be listened on right now. */
export function bindable(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** The ports of `wanted` that are out of range, repeated, or held by another program, each with why. */
export async function unusablePorts(wanted: NamedPort[], host = '127.0.0.1'): Promise<string[]> {
  const problems: string[] = [];
  const seen = new Map<number, string>();
  for (const { port, flag } of wanted) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      problems.push(`${flag} ${port}: expected a port number from 1 to 65535`);
      continue;
    }
    const other = seen.get(port);
    if (other) {
      problems.push(`${flag} ${port}: the same port as ${other}`);
      continue;
    }
    seen.set(port, flag);
    if (!(await bindable(port, host))) problems.push(`${flag} ${port}: in use by another program on ${host}`);
  }
  return problems;
}
