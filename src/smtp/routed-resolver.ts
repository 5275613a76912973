import { promises as systemDns } from 'node:dns';
import { isIP } from 'node:net';
import type { MxResolver } from './mx-route.js';

/**
 * Fixed routes in front of DNS, like Postfix's transport_maps: mail (or probes) for these domains goes to
 * the given host (a name or an IP address, e.g. an internal hub that DNS does not publish); every other
 * domain is resolved by `fallback`.
 */
export function routedResolver(routes: Readonly<Record<string, string>>, fallback: MxResolver = systemDns): MxResolver {
  const byDomain = new Map(Object.entries(routes).map(([domain, host]) => [domain.toLowerCase(), host.toLowerCase()]));
  return {
    async resolveMx(domain) {
      const host = byDomain.get(domain.toLowerCase());
      return host === undefined ? fallback.resolveMx(domain) : [{ exchange: host, priority: 0 }];
    },
    async resolve4(host) {
      return isIP(host) === 4 ? [host] : isIP(host) === 6 ? [] : fallback.resolve4(host);
    },
    async resolve6(host) {
      return isIP(host) === 6 ? [host] : isIP(host) === 4 ? [] : fallback.resolve6(host);
    },
  };
}
