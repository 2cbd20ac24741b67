/** TEMPORAL_ADDRESS, checked before a connection is tried: a malformed one is bad configuration, not "unreachable". No SDK import. */
import { showValue } from '../spec/show-value';

/** Why `address` is not `host:port` (a host name, an IPv4 address or a bracketed IPv6 one; a port from 1 to 65535), or undefined when it is. */
export function temporalAddressProblem(address: string): string | undefined {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):(\d{1,5})$/.exec(address);
  const port = match ? Number(match[3]) : 0;
  if (match && port >= 1 && port <= 65535) return undefined;
  return `expected host:port with a port from 1 to 65535 (e.g. localhost:7233), got ${showValue(address)}`;
}
