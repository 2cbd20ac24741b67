/**
 * A client connection to Temporal that is known to answer: connected within 5 s and asked for its
 * system info (a connection alone may succeed against something that is not Temporal, or hang).
 * When it fails, `explainConnectFailure` says why in one line: Temporal not reachable, a TLS
 * handshake that failed (the SDK only says "Failed to connect before the deadline" then, so the
 * handshake is tried again on its own to learn why), or credentials refused (UNAUTHENTICATED,
 * PERMISSION_DENIED). Callers turn that into their own error (the CLI's exit 3, the worker's
 * start error).
 */
import { Connection } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import net from 'node:net';
import tls from 'node:tls';
import { describeSettings, type TemporalTarget } from './connection-config';
import { GRPC_CREDENTIALS_REFUSED, GRPC_UNAUTHENTICATED, grpcCodeOf, grpcDetailsOf } from './grpc-status';

export async function connectAnswering(target: TemporalTarget, connectTimeout: Duration = '5s'): Promise<Connection> {
  const connection = await Connection.connect({ ...target.connectionOptions, connectTimeout });
  try {
    await connection.workflowService.getSystemInfo({});
  } catch (err) {
    await connection.close().catch(() => undefined);
    throw err;
  }
  return connection;
}

export interface ConnectFailure {
  kind: 'unreachable' | 'tls' | 'credentials';
  /** One line, without advice on what to set (callers add theirs for `unreachable`). */
  message: string;
}

const firstLine = (err: unknown): string => (err instanceof Error ? err.message : String(err)).split('\n')[0];

/** Whether a gRPC error means the server refused our credentials (exit 3, with what to check). */
export function isCredentialsRefused(err: unknown): boolean {
  const code = grpcCodeOf(err);
  return code !== undefined && GRPC_CREDENTIALS_REFUSED.has(code);
}

/** The one line for refused credentials: the server's words and what was sent. */
export function credentialsMessage(err: unknown, target: TemporalTarget): string {
  const code = grpcCodeOf(err) === GRPC_UNAUTHENTICATED ? 'UNAUTHENTICATED' : 'PERMISSION_DENIED';
  const sent = target.from.apiKey ? `the API key from ${target.from.apiKey}` : target.tls ? 'no API key (TLS only)' : 'no API key';
  return `Temporal at ${target.address} refused the credentials for namespace ${JSON.stringify(target.namespace)} (${code}: ${firstLine(grpcDetailsOf(err))}); sent ${sent}: check TEMPORAL_API_KEY or the profile's api_key (or its client certificate)`;
}

/**
 * Why a connection to `target` failed, in one line. For a failure that is not a refusal, the TCP
 * connection and the TLS handshake are tried on their own (a few seconds at most) to tell a closed
 * port from a handshake that failed, and a plaintext server from one that wants TLS.
 */
export async function explainConnectFailure(err: unknown, target: TemporalTarget, probeTimeoutMs = 3000): Promise<ConnectFailure> {
  if (isCredentialsRefused(err)) return { kind: 'credentials', message: credentialsMessage(err, target) };
  const probe = await probeTls(target, probeTimeoutMs);
  if (probe.kind === 'tcp') return { kind: 'unreachable', message: `cannot reach Temporal at ${target.address} (${probe.why})` };
  if (target.tls && probe.kind === 'handshake') {
    return { kind: 'tls', message: `TLS handshake with Temporal at ${target.address} failed: ${probe.why} (${describeSettings(target)})` };
  }
  // A TLS server with a certificate we cannot check (a private CA) still shows that it wants TLS.
  if (!target.tls && (probe.kind === 'ok' || (probe.kind === 'handshake' && probe.certificate))) {
    return {
      kind: 'tls',
      message: `Temporal at ${target.address} did not answer without TLS and completes a TLS handshake: it expects TLS (set TEMPORAL_TLS=1 or [profile.NAME.tls] in the config file; ${describeSettings(target)})`,
    };
  }
  return { kind: 'unreachable', message: `cannot reach Temporal at ${target.address} (${firstLine(err)})` };
}

type Probe = { kind: 'tcp'; why: string } | { kind: 'handshake'; why: string; certificate?: boolean } | { kind: 'ok' };

/** A TCP connection to the target, then a TLS handshake over it with the target's TLS settings (h2, as gRPC). */
export async function probeTls(target: TemporalTarget, timeoutMs: number): Promise<Probe> {
  const match = /^\[?(.*?)\]?:(\d+)$/.exec(target.address);
  if (!match) return { kind: 'tcp', why: 'not host:port' };
  const [host, port] = [match[1], Number(match[2])];
  const socket = net.connect({ host, port });
  const connected = await new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => resolve(`no TCP connection within ${timeoutMs} ms`), timeoutMs);
    socket.once('connect', () => (clearTimeout(timer), resolve(undefined)));
    socket.once('error', (e: NodeJS.ErrnoException) => (clearTimeout(timer), resolve(e.code ?? e.message)));
  });
  if (connected !== undefined) {
    socket.destroy();
    return { kind: 'tcp', why: connected };
  }
  const config = typeof target.connectionOptions.tls === 'object' ? target.connectionOptions.tls : {};
  const serverName = config.serverNameOverride ?? (net.isIP(host) ? undefined : host);
  const toBuffer = (b: Uint8Array | undefined) => (b === undefined ? undefined : Buffer.from(b));
  let secure: tls.TLSSocket;
  try {
    secure = tls.connect({
      socket,
      // No SNI for an IP address (RFC 6066; Node warns about it), but the certificate is still checked against it.
      ...(serverName !== undefined ? { servername: serverName } : {}),
      checkServerIdentity: (hostname, cert) => tls.checkServerIdentity(serverName ?? hostname ?? host, cert),
      ca: toBuffer(config.serverRootCACertificate),
      cert: toBuffer(config.clientCertPair?.crt),
      key: toBuffer(config.clientCertPair?.key),
      ALPNProtocols: ['h2'],
    });
  } catch (e) {
    socket.destroy();
    return { kind: 'handshake', why: firstLine(e) };
  }
  const outcome = await new Promise<Probe>((resolve) => {
    const timer = setTimeout(() => resolve({ kind: 'handshake', why: `no TLS handshake within ${timeoutMs} ms` }), timeoutMs);
    secure.once('secureConnect', () => (clearTimeout(timer), resolve({ kind: 'ok' })));
    secure.once('error', (e: NodeJS.ErrnoException) => (clearTimeout(timer), resolve({ kind: 'handshake', why: tlsErrorText(e), certificate: isCertificateError(e) })));
  });
  secure.destroy();
  socket.destroy();
  return outcome;
}

/** What a handshake error means, in words, with its code. */
function tlsErrorText(e: NodeJS.ErrnoException): string {
  const code = e.code ?? '';
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|RECORD_LAYER|UNKNOWN_PROTOCOL/.test(code) || /wrong version number|packet length too long|http request/i.test(e.message)) {
    return `the server does not speak TLS (${code || e.message})`;
  }
  if (code === 'ECONNRESET' || /socket disconnected before secure TLS connection/i.test(e.message)) {
    return `the server closed the connection during the handshake (it does not speak TLS, or refused our certificate) (${code || e.message})`;
  }
  if (isCertificateError(e)) {
    return `the server's certificate is not trusted: ${e.message} (${code}): set its CA with TEMPORAL_TLS_SERVER_CA_CERT_PATH or the profile's tls.server_ca_cert_path, and its name with TEMPORAL_TLS_SERVER_NAME or tls.server_name if it differs from the address`;
  }
  return `${e.message}${code ? ` (${code})` : ''}`;
}

/** The server spoke TLS, and its certificate did not check out (untrusted issuer, wrong name, expired). */
function isCertificateError(e: NodeJS.ErrnoException): boolean {
  return /CERT|SELF_SIGNED|UNABLE_TO_|ALTNAME|HOSTNAME/.test(e.code ?? '');
}
