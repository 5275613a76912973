import { hostname } from 'node:os';
import { resolveMxRoute } from '../smtp/mx-route.js';
import { cacheKey, parseProbeAddress, type ProbeAddress } from './address.js';
import { DomainLimiter } from './domain-limiter.js';
import { classifyAddress } from './ip-guard.js';
import { MemoryVerificationCache } from './memory-cache.js';
import { probeHost, type AddressAnswer, type ProbeSettings } from './probe.js';
import { cacheFromUrl } from './redis-cache.js';
import type { CacheTtls, Verification, VerificationCache, VerificationResult, VerifyOptions } from './types.js';

export const DEFAULT_TTLS: CacheTtls = { positiveMs: 7 * 24 * 3600_000, negativeMs: 3 * 3600_000, tempfailMs: 5 * 60_000 };
const DEFAULT_TIMEOUT_MS = 30_000;
/** Addresses tried per verification, over all MX hosts (Postfix's smtp_mx_address_limit). */
const MAX_ADDRESSES = 5;

const defaultCache = new MemoryVerificationCache();
const urlCaches = new Map<string, VerificationCache>();

function cacheOf(option: VerifyOptions['cache']): VerificationCache | undefined {
  if (option === false) return undefined;
  if (typeof option !== 'string') return option ?? defaultCache;
  let cache = urlCaches.get(option);
  if (!cache) {
    cache = cacheFromUrl(option);
    urlCaches.set(option, cache);
  }
  return cache;
}
const limiters = new Map<string, DomainLimiter>();
/** Verifications under way, by cache key: concurrent checks of one address share one probe. */
const inFlight = new Map<string, Promise<Verification>>();

function limiterFor(options: VerifyOptions): DomainLimiter {
  const concurrency = options.maxConcurrentPerDomain ?? 2;
  const perMinute = options.maxSessionsPerMinutePerDomain ?? 30;
  const key = `${concurrency}/${perMinute}`;
  let limiter = limiters.get(key);
  if (!limiter) {
    limiter = new DomainLimiter(concurrency, perMinute);
    limiters.set(key, limiter);
  }
  return limiter;
}

function verification(address: string, started: number, transcript: string[], fields: Partial<Verification> & { result: VerificationResult; message: string }): Verification {
  return { address, code: undefined, enhancedStatus: undefined, mx: undefined, transcript, durationMs: Date.now() - started, fromCache: false, ...fields };
}

function ttlFor(result: VerificationResult, ttls: CacheTtls): number {
  return result === 'valid' ? ttls.positiveMs : result === 'tempfail' ? ttls.tempfailMs : ttls.negativeMs;
}

/** Asks the domain's MX hosts about its addresses, in one session per MX address, until one answers. */
async function probeDomain(domain: string, addresses: readonly ProbeAddress[], options: VerifyOptions, started: number): Promise<Map<ProbeAddress, Verification>> {
  const deadline = started + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const transcript: string[] = [];
  const all = (fields: Partial<Verification> & { result: VerificationResult; message: string }): Map<ProbeAddress, Verification> =>
    new Map(addresses.map((a) => [a, verification(a.address, started, transcript, fields)]));

  const route = await resolveMxRoute(domain, options.resolver);
  if ('permanent' in route) {
    const nullMx = /null MX/.test(route.permanent);
    return all({ result: 'invalid', code: 550, enhancedStatus: nullMx ? '5.7.27' : '5.1.8', message: route.permanent, detail: nullMx ? 'null-mx' : 'no-mail-domain' });
  }
  if ('temporary' in route) return all({ result: 'tempfail', enhancedStatus: '4.4.3', message: route.temporary, detail: 'dns' });

  const targets: { host: string; ip: string }[] = [];
  const refused: string[] = [];
  for (const { host, addresses: ips } of route.hosts) {
    for (const ip of ips) {
      const kind = classifyAddress(ip);
      if ((kind === 'loopback' && !options.allowLoopback) || (kind === 'private' && !options.allowPrivate)) refused.push(`${host} (${ip}, ${kind})`);
      else targets.push({ host, ip });
    }
  }
  if (targets.length === 0) return all({ result: 'unverifiable', message: `MX points at ${refused.join(', ')}`, detail: 'mx-not-public' });

  const settings: ProbeSettings = {
    heloName: options.heloName ?? hostname(),
    probeSender: options.probeSender ?? '',
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    greetingTimeoutMs: options.greetingTimeoutMs ?? 30_000,
    commandTimeoutMs: options.commandTimeoutMs ?? 30_000,
    deadline,
    tls: options.opportunisticTls ?? true,
    detectCatchAll: options.detectCatchAll ?? false,
  };
  const port = options.port ?? 25;
  let lastReason = 'no MX answered';
  let lastHost: string | undefined;
  let allRefusedService = true;
  return limiterFor(options).run(domain, deadline, async () => {
    for (const { host, ip } of targets.slice(0, MAX_ADDRESSES)) {
      if (Date.now() >= deadline) break;
      lastHost = host;
      let outcome = await probeHost(host, ip, port, addresses, settings, transcript);
      // Opportunistic TLS: a failed handshake is retried in the clear, as Postfix and Exim do.
      if (outcome.kind === 'next' && outcome.tlsFailed) outcome = await probeHost(host, ip, port, addresses, { ...settings, tls: false }, transcript);
      if (outcome.kind === 'answered') {
        return new Map(
          addresses.map((a) => {
            const { result, code, enhancedStatus, message, detail } = outcome.answers.get(a) as AddressAnswer;
            return [a, verification(a.address, started, transcript, { result, code, enhancedStatus, message, mx: host, ...(detail ? { detail } : {}) })];
          }),
        );
      }
      lastReason = `${host}: ${outcome.reason}`;
      if (!outcome.noService) allRefusedService = false;
    }
    if (allRefusedService && Date.now() < deadline) return all({ result: 'unverifiable', message: lastReason, mx: lastHost, detail: 'no-service' });
    return all({ result: 'tempfail', message: Date.now() >= deadline ? `budget spent: ${lastReason}` : lastReason, mx: lastHost, detail: 'no-mx-answered' });
  });
}

/**
 * Verifies sender addresses by asking their MX, without sending mail: EHLO, MAIL FROM:<>, RCPT TO, RSET or
 * QUIT — never DATA. Addresses of one domain share one SMTP session. Results are cached (valid, negative and
 * tempfail TTLs), concurrent checks of one address share one probe, and each domain gets a bounded number of
 * sessions. Never throws.
 */
export async function verifyAddresses(inputs: readonly string[], options: VerifyOptions = {}): Promise<Verification[]> {
  const started = Date.now();
  const cache = cacheOf(options.cache);
  const ttls = { ...DEFAULT_TTLS, ...options.ttls };
  const results = new Map<string, Promise<Verification>>();
  const toProbe = new Map<string, { address: ProbeAddress; resolve: (v: Verification) => void }[]>();

  for (const input of inputs) {
    if (results.has(input)) continue;
    const address = parseProbeAddress(input);
    if (!address) {
      results.set(input, Promise.resolve(verification(input, started, [], { result: 'invalid', message: 'not an address that can be probed safely', detail: 'syntax' })));
      continue;
    }
    const key = cacheKey(address);
    const cached = cache instanceof MemoryVerificationCache ? cache.lookup(key) : await cache?.get(key);
    if (cached) {
      results.set(input, Promise.resolve({ ...cached, address: input, fromCache: true, durationMs: Date.now() - started }));
      continue;
    }
    const shared = inFlight.get(key);
    if (shared) {
      results.set(input, shared.then((v) => ({ ...v, address: input })));
      continue;
    }
    const pending = new Promise<Verification>((resolve) => {
      const group = toProbe.get(address.domain) ?? [];
      group.push({ address, resolve });
      toProbe.set(address.domain, group);
    });
    inFlight.set(key, pending);
    results.set(input, pending);
  }

  await Promise.all(
    [...toProbe].map(async ([domain, group]) => {
      let answers: Map<ProbeAddress, Verification>;
      try {
        answers = await probeDomain(domain, group.map((g) => g.address), options, started);
      } catch (err) {
        const failure = (a: ProbeAddress): Verification => verification(a.address, started, [], { result: 'tempfail', message: (err as Error).message, detail: 'internal' });
        answers = new Map(group.map((g) => [g.address, failure(g.address)]));
      }
      for (const { address, resolve } of group) {
        const result = answers.get(address) as Verification;
        const key = cacheKey(address);
        if (cache) {
          // A failed probe never replaces a fresh positive entry (Postfix's rule).
          const previous = result.result === 'valid' ? undefined : await cache.get(key);
          if (previous?.result !== 'valid') await cache.set(key, { ...result, fromCache: false }, ttlFor(result.result, ttls));
        }
        inFlight.delete(key);
        resolve(result);
      }
    }),
  );
  return Promise.all(inputs.map((input) => results.get(input) as Promise<Verification>));
}

/** Closes the caches opened from URLs (their connections would keep a process alive). */
export async function closeVerificationCaches(): Promise<void> {
  const caches = [...urlCaches.values()];
  urlCaches.clear();
  await Promise.all(caches.map((c) => c.close?.()));
}

/** Verifies one address; see verifyAddresses. */
export async function verifyAddress(address: string, options: VerifyOptions = {}): Promise<Verification> {
  const [result] = await verifyAddresses([address], options);
  return result as Verification;
}
