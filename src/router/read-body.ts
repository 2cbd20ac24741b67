import type http from 'node:http';

/** Reads a request body into memory; more than `limit` bytes rejects with `tooLong` and drops the request. */
export function readBodyUpTo(req: http.IncomingMessage, limit: number, tooLong: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error(tooLong));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
