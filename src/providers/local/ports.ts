/**
 * Free loopback ports for replicas. The OS picks one (listen on 0) and we close it again, so
 * another process may take it before the replica binds: that replica then fails to start and
 * is relaunched on a new port. To keep that rare we never hand out a port twice while it is
 * in use by a replica we know of (handed out by this process, or in a record on disk).
 */
import net from 'node:net';

const ATTEMPTS = 20;

export async function pickFreePort(host: string, inUse: ReadonlySet<number>): Promise<number> {
  for (let i = 0; i < ATTEMPTS; i += 1) {
    const port = await ephemeralPort(host);
    if (!inUse.has(port)) return port;
  }
  throw new Error(`no free port on ${host} after ${ATTEMPTS} attempts`);
}

function ephemeralPort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('listen(0) gave no port'))));
    });
  });
}
