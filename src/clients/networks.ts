// A client's allowed source networks (DESIGN.md, "Service clients"): `--allow-cidr`.
import ipaddr from 'ipaddr.js';

export function ipAllowed(ip: string, cidrs: string[]): boolean {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.process(ip); // IPv4-mapped IPv6 becomes IPv4
  } catch {
    return false;
  }
  return cidrs.some((c) => {
    try {
      const [net, bits] = c.includes('/') ? ipaddr.parseCIDR(c) : [ipaddr.process(c), ipaddr.process(c).kind() === 'ipv4' ? 32 : 128];
      return addr.kind() === net.kind() && addr.match(net, bits);
    } catch {
      return false;
    }
  });
}
