import { promises as systemDns, type MxRecord } from 'node:dns';

/**
 * The lookups MX routing needs, shaped like node's `dns.promises.Resolver` (which satisfies it, as does the
 * `dns.promises` module). Declared structurally so that tests and callers can pass a plain object.
 */
export interface MxResolver {
  resolveMx(hostname: string): Promise<MxRecord[]>;
  resolve4(hostname: string): Promise<string[]>;
  resolve6(hostname: string): Promise<string[]>;
}

/** A host to try, with its addresses (IPv4 first, then IPv6). */
export interface MxHost {
  host: string;
  addresses: string[];
}

/**
 * Where mail for a domain goes: the hosts in the order they must be tried, or why there is nowhere to go.
 * `permanent` means DNS says the domain cannot receive mail; `temporary` means DNS could not answer now.
 */
export type MxRoute = { hosts: MxHost[] } | { permanent: string } | { temporary: string };

type HostLookup = MxHost | { permanent: string } | { temporary: string };

/**
 * Resolves the MX route of `domain` (an ASCII domain, A-labels for IDNs) the way an MTA does (RFC 5321 §5.1):
 * MX records by preference with equal preferences shuffled, the implicit MX (the domain's own A/AAAA) only when
 * the domain has no MX records, and RFC 7505 null MX as "accepts no mail". NXDOMAIN is permanent; SERVFAIL,
 * timeouts and other lookup failures are temporary. Hosts without addresses are left out of `hosts`.
 */
export async function resolveMxRoute(domain: string, resolver: MxResolver = systemDns): Promise<MxRoute> {
  let records: MxRecord[];
  try {
    records = await resolver.resolveMx(domain);
  } catch (err) {
    const code = dnsErrorCode(err);
    if (code === 'ENOTFOUND') return { permanent: `${domain}: domain does not exist (NXDOMAIN)` };
    // ENODATA: the domain exists without MX records, so the implicit MX below applies.
    if (code !== 'ENODATA') return { temporary: `${domain}: MX lookup failed (${code})` };
    records = [];
  }

  let hostNames = [domain];
  if (records.length > 0) {
    // Node reports the null MX target "." as ''. Connecting to '' would reach localhost, so such records are
    // never used; a null MX mixed with real ones is a misconfiguration and is ignored (as mx-connect does).
    const usable = records.filter((record) => stripRootDot(record.exchange) !== '');
    if (usable.length === 0) return { permanent: `${domain}: null MX, the domain accepts no mail (RFC 7505)` };
    hostNames = preferenceOrder(usable).map((record) => stripRootDot(record.exchange).toLowerCase());
  }

  const lookups = await Promise.all(hostNames.map((host) => lookupHost(host, resolver)));
  const hosts = lookups.filter((lookup): lookup is MxHost => 'addresses' in lookup);
  if (hosts.length > 0) return { hosts };
  const temporary = lookups.find((lookup) => 'temporary' in lookup);
  if (temporary) return temporary;
  return {
    permanent: records.length > 0 ? `${domain}: no MX host has an address` : `${domain}: no MX and no A/AAAA record`,
  };
}

/** RFC 5321 §5.1: lowest preference first, and hosts of equal preference MUST be tried in random order. */
function preferenceOrder(records: MxRecord[]): MxRecord[] {
  return records
    .map((record) => ({ record, tiebreak: Math.random() }))
    .sort((a, b) => a.record.priority - b.record.priority || a.tiebreak - b.tiebreak)
    .map(({ record }) => record);
}

async function lookupHost(host: string, resolver: MxResolver): Promise<HostLookup> {
  const answers = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const addresses = answers.flatMap((answer) => (answer.status === 'fulfilled' ? answer.value : []));
  if (addresses.length > 0) return { host, addresses };
  for (const answer of answers) {
    const code = answer.status === 'rejected' ? dnsErrorCode(answer.reason) : 'ENODATA';
    if (code !== 'ENOTFOUND' && code !== 'ENODATA') return { temporary: `${host}: address lookup failed (${code})` };
  }
  return { permanent: `${host}: no A/AAAA record` };
}

function stripRootDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

function dnsErrorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : String(err);
}
