import { domainToASCII } from 'node:url';

/** An address split for probing: the local part as given, the domain in ASCII (A-labels for IDNs). */
export interface ProbeAddress {
  address: string;
  local: string;
  domain: string;
  /** The local part is not ASCII: it can only be probed on a server that offers SMTPUTF8. */
  utf8Local: boolean;
}

// Anything that could end or add an SMTP command, or that no mailbox has.
const FORBIDDEN = /[\u0000-\u0020\u007f<>\u2028\u2029]/u;

/** The address, checked before anything is sent: undefined when it cannot be probed safely. */
export function parseProbeAddress(input: string): ProbeAddress | undefined {
  const address = input.trim().replace(/^<(.*)>$/, '$1');
  if (address === '' || FORBIDDEN.test(address)) return undefined;
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  const local = address.slice(0, at);
  const domain = domainToASCII(address.slice(at + 1).toLowerCase());
  if (domain === '' || !domain.includes('.')) return undefined;
  return { address, local, domain, utf8Local: /[^\x00-\x7f]/.test(local) };
}

/** The cache key: the domain is case-insensitive, the local part is not (RFC 5321 2.4). */
export function cacheKey(address: ProbeAddress): string {
  return `${address.local}@${address.domain}`;
}
