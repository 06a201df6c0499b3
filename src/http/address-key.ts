// The key a limiter counts a caller's address under. An IPv6 host is routinely given a whole
// /64 (RFC 6177, RFC 8273) and picks addresses in it at will, so a per-address limit keyed on
// the full 128 bits is a limit per request; the /64 is what one attacker holds. IPv4-mapped
// IPv6 counts as the IPv4 address it carries.
import ipaddr from 'ipaddr.js';

export function addressKey(ip: string): string {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.process(ip);
  } catch {
    return 'unknown';
  }
  if (addr.kind() === 'ipv4') return addr.toString();
  const parts = (addr as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...parts, 0, 0, 0, 0]).toString()}/64`;
}
