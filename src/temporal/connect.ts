/**
 * A client connection to Temporal that is known to answer: connected within 5 s and asked for its
 * system info (a connection alone may succeed against something that is not Temporal, or hang).
 * Callers turn a failure into their own error (the CLI's exit 3, the worker's start error).
 */
import { Connection } from '@temporalio/client';

export async function connectAnswering(address: string): Promise<Connection> {
  const connection = await Connection.connect({ address, connectTimeout: '5s' });
  try {
    await connection.workflowService.getSystemInfo({});
  } catch (err) {
    await connection.close().catch(() => undefined);
    throw err;
  }
  return connection;
}
