import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { Verification, VerificationCache, VerificationResult } from './types.js';

export interface RedisCacheOptions {
  /** Prepended to every key, so that one Redis can hold other data too. Default 'milterkit:cbv:'. */
  keyPrefix?: string;
  /**
   * Told of the first failure of each outage, not of every failed command, so that a dead Redis does not flood
   * the log; told again only after Redis has answered again and then failed anew.
   */
  onError?: (error: Error) => void;
  /** Bound on connecting and on each command. Default 1000 ms. */
  timeoutMs?: number;
}

const RESULTS: ReadonlySet<VerificationResult> = new Set(['valid', 'invalid', 'tempfail', 'unverifiable']);

/**
 * Verification results shared through Redis by every milter process of a fleet. The cache is an optimisation,
 * never a dependency: while Redis is away `get` answers undefined and `set` does nothing, quickly, so mail is
 * verified as if there were no cache.
 */
export class RedisVerificationCache implements VerificationCache {
  private readonly client: Redis;
  private readonly onError: ((error: Error) => void) | undefined;
  /** Settles once the first connection is up or has failed (bounded); later calls do not wait at all. */
  private readonly firstConnection: Promise<void>;
  /** Between a failure and the next answered command: failures in between are not reported. */
  private failing = false;

  constructor(url: string, options: RedisCacheOptions = {}) {
    const scheme = urlScheme(url);
    if (!isRedisScheme(scheme)) {
      throw new Error(`RedisVerificationCache needs a redis:// or rediss:// URL, not ${scheme}//`);
    }
    const timeoutMs = options.timeoutMs ?? 1000;
    this.onError = options.onError;
    this.client = new Redis(url, {
      keyPrefix: options.keyPrefix ?? 'milterkit:cbv:',
      // ioredis only recognises a lower-case "rediss://"; the scheme is case-insensitive.
      ...(scheme === 'rediss:' ? { tls: {} } : {}),
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      // Fail commands at once while disconnected instead of queueing them until Redis returns.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      lazyConnect: true,
    });
    // Without a listener, ioredis prints every reconnection failure to the console.
    this.client.on('error', (err: Error) => this.report(err));
    // Commands are refused until the first connection is ready, so the first calls wait for it (bounded,
    // in case Redis accepts the connection and then never answers the handshake).
    this.firstConnection = Promise.race([this.client.connect(), delay(timeoutMs, undefined, { ref: false })]).catch(
      () => undefined, // already reported through the 'error' event
    );
  }

  async get(key: string): Promise<Verification | undefined> {
    const raw = await this.attempt(() => this.client.get(key));
    return raw == null ? undefined : decode(raw);
  }

  async set(key: string, value: Verification, ttlMs: number): Promise<void> {
    if (!(ttlMs > 0)) return; // Redis refuses a zero or negative PX, and such a result is not to be kept anyway
    await this.attempt(() => this.client.set(key, JSON.stringify(value), 'PX', Math.ceil(ttlMs)));
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      // Redis is away: QUIT cannot be sent, so drop the socket and stop reconnecting.
      this.client.disconnect();
    }
  }

  private async attempt<T>(command: () => Promise<T>): Promise<T | undefined> {
    await this.firstConnection;
    try {
      const reply = await command();
      this.failing = false;
      return reply;
    } catch (err) {
      this.report(err instanceof Error ? err : new Error(String(err)));
      return undefined;
    }
  }

  private report(error: Error): void {
    if (this.failing) return;
    this.failing = true;
    this.onError?.(error);
  }
}

/** The cache a URL names: Redis for redis:// and rediss://. */
export function cacheFromUrl(url: string, options: RedisCacheOptions = {}): VerificationCache {
  const scheme = urlScheme(url);
  if (isRedisScheme(scheme)) return new RedisVerificationCache(url, options);
  throw new Error(`unsupported verification cache URL scheme ${scheme}// (expected redis:// or rediss://)`);
}

/** The URL's scheme, lower-cased with its colon; errors leave the URL out, as it may hold a password. */
function urlScheme(url: string): string {
  try {
    return new URL(url).protocol;
  } catch {
    throw new Error('verification cache URL is not a valid URL (expected redis://host:port/db or rediss://...)');
  }
}

function isRedisScheme(scheme: string): boolean {
  return scheme === 'redis:' || scheme === 'rediss:';
}

/** A stored value, or undefined when it is not JSON or not shaped like a Verification (another writer, an old format). */
function decode(raw: string): Verification | undefined {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Partial<Record<keyof Verification, unknown>>;
  const shaped =
    typeof v.address === 'string' &&
    RESULTS.has(v.result as VerificationResult) &&
    typeof v.message === 'string' &&
    Array.isArray(v.transcript) &&
    typeof v.durationMs === 'number';
  return shaped ? (value as Verification) : undefined;
}
