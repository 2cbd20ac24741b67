/**
 * A stand-in for a Temporal server behind TLS, on loopback: the dev server has no TLS options
 * (`temporal server start-dev --help` lists none), and building the real server with TLS and an
 * authorizer is minutes of Go. This is Node's own HTTP/2 server over TLS, with a certificate from
 * a throwaway CA made with openssl, that answers every gRPC call with one status (by default
 * UNAUTHENTICATED, as Temporal Cloud answers a key it does not take) and records the
 * `authorization` header it was sent. It is enough for what the CLI must tell apart: a TLS
 * handshake that fails (a CA that does not match), and one that succeeds followed by refused
 * credentials.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';

export interface Certificates {
  /** The CA that signed the server's certificate (PEM file). */
  caFile: string;
  /** A CA that signed nothing here: a client trusting only it rejects the server. */
  otherCaFile: string;
  serverKey: string;
  serverCert: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a server certificate it signs for 127.0.0.1 and localhost, and an unrelated CA; valid for two days. */
export function makeCertificates(dir: string): Certificates {
  fs.mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const ca = ['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=rollout test CA', ...ca], dir);
  openssl(['req', '-x509', ...ec, '-keyout', 'other-ca.key', '-out', 'other-ca.pem', '-days', '2', '-subj', '/CN=another test CA', ...ca], dir);
  openssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  fs.writeFileSync(path.join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'server.ext'], dir);
  return {
    caFile: path.join(dir, 'ca.pem'),
    otherCaFile: path.join(dir, 'other-ca.pem'),
    serverKey: path.join(dir, 'server.key'),
    serverCert: path.join(dir, 'server.pem'),
  };
}

export interface GrpcStandIn {
  address: string;
  /** The `authorization` headers of the calls it answered, in order. */
  authorizations: Array<string | undefined>;
  /** TLS handshakes that failed (the client refused our certificate, or spoke plaintext). */
  tlsErrors: number;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1, a port the kernel picks; answers every call with `status` (16 = UNAUTHENTICATED). */
export async function startGrpcStandIn(certs: Certificates, status = 16, message = 'Request unauthorized.'): Promise<GrpcStandIn> {
  const server = http2.createSecureServer({ key: fs.readFileSync(certs.serverKey), cert: fs.readFileSync(certs.serverCert) });
  const standIn = { authorizations: [] as Array<string | undefined>, tlsErrors: 0 };
  server.on('tlsClientError', () => standIn.tlsErrors++);
  // Sessions a client left open would hold close() forever: they are destroyed on close.
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    standIn.authorizations.push(typeof headers.authorization === 'string' ? headers.authorization : undefined);
    // A trailers-only gRPC response: the status in the headers, no message.
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(status), 'grpc-message': grpcMessage(message) }, { endStream: true });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  return Object.assign(standIn, {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
      }),
  });
}

/** grpc-message as the gRPC spec encodes it: printable ASCII as is, except "%"; anything else percent-encoded. */
function grpcMessage(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((b) => (b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}
