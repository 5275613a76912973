import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { cacheFromUrl, RedisVerificationCache, type RedisCacheOptions } from '../../src/cbv/redis-cache.js';
import { freePort } from '../support/free-port.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import type { Verification } from '../../src/cbv/types.js';

const PREFIX = 'milterkit:cbv:';
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

function verification(address: string): Verification {
  return {
    address,
    result: 'valid',
    code: 250,
    enhancedStatus: '2.1.5',
    message: '250 2.1.5 Ok',
    mx: 'mx.example.test',
    transcript: ['C: RCPT TO:<' + address + '>', 'S: 250 2.1.5 Ok'],
    durationMs: 42,
    fromCache: false,
  };
}

/** Resolves with how long `promise` took, failing the test if it takes longer than `limitMs`. */
async function within<T>(limitMs: number, promise: Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await Promise.race([
    promise,
    delay(limitMs).then(() => {
      throw new Error(`still pending after ${limitMs} ms`);
    }),
  ]);
  return { value, ms: performance.now() - start };
}

describe('RedisVerificationCache against a real redis-server', () => {
  // Started by the first test rather than in beforeAll, so that a missing redis-server fails every test
  // instead of marking them skipped.
  let started: Promise<RedisServer> | undefined;
  let rawClient: Redis | undefined;
  const server = () => (started ??= startRedis());
  const raw = async () => (rawClient ??= new Redis((await server()).url));
  const errors: Error[] = [];
  const opened: RedisVerificationCache[] = [];
  const open = async (options: RedisCacheOptions = { onError: (e) => errors.push(e) }) => {
    const cache = new RedisVerificationCache((await server()).url, options);
    opened.push(cache);
    return cache;
  };

  afterAll(async () => {
    await Promise.all(opened.map((c) => c.close()));
    rawClient?.disconnect();
    await (await started?.catch(() => undefined))?.stop();
  });

  it('round-trips a verification under the default key prefix, with a PX TTL', async () => {
    const cache = await open();
    const value = verification('alice@example.test');
    await cache.set('alice@example.test', value, 60_000);
    expect(await cache.get('alice@example.test')).toEqual(value);
    expect(JSON.parse((await (await raw()).get(`${PREFIX}alice@example.test`)) ?? 'null')).toEqual(value);
    const pttl = await (await raw()).pttl(`${PREFIX}alice@example.test`);
    expect(pttl).toBeGreaterThan(55_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect(await cache.get('nobody@example.test')).toBeUndefined();
    expect(errors).toEqual([]);
  });

  it('forgets a value once its TTL has passed', async () => {
    const cache = await open();
    await cache.set('short@example.test', verification('short@example.test'), 150);
    expect(await cache.get('short@example.test')).toBeDefined();
    await delay(400);
    expect(await cache.get('short@example.test')).toBeUndefined();
    expect(await (await raw()).exists(`${PREFIX}short@example.test`)).toBe(0);
  });

  it('shares results between two instances (two connections, as two milter processes)', async () => {
    const a = await open();
    const b = await open();
    await a.set('shared@example.test', verification('shared@example.test'), 60_000);
    expect(await b.get('shared@example.test')).toEqual(verification('shared@example.test'));
  });

  it('reads a value that another node process wrote', async () => {
    const script = `
      const { RedisVerificationCache } = await import(process.env.CACHE_MODULE);
      const cache = new RedisVerificationCache(process.env.REDIS_URL, { onError: (e) => { console.error(e); process.exitCode = 1; } });
      await cache.set('other@example.test', JSON.parse(process.env.VALUE), 60000);
      await cache.close();
    `;
    const value = { ...verification('other@example.test'), result: 'invalid', code: 550, mx: undefined };
    const { stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: repoRoot,
        timeout: 30_000,
        env: {
          ...process.env,
          CACHE_MODULE: new URL('../../src/cbv/redis-cache.ts', import.meta.url).href,
          REDIS_URL: (await server()).url,
          VALUE: JSON.stringify(value),
        },
      },
    );
    expect(stderr).toBe('');
    expect(await (await open()).get('other@example.test')).toEqual(value);
  });

  it('answers undefined for a malformed or foreign value instead of throwing', async () => {
    const cache = await open();
    const redis = await raw();
    await redis.set(`${PREFIX}broken@example.test`, '{"address": "broken@example.test", "resu');
    await redis.set(`${PREFIX}number@example.test`, '42');
    await redis.set(`${PREFIX}shape@example.test`, JSON.stringify({ address: 'shape@example.test', result: 'maybe' }));
    expect(await cache.get('broken@example.test')).toBeUndefined();
    expect(await cache.get('number@example.test')).toBeUndefined();
    expect(await cache.get('shape@example.test')).toBeUndefined();
  });

  it('keeps keys under a custom prefix', async () => {
    const cache = await open({ keyPrefix: 'fleet-a:' });
    await cache.set('prefixed@example.test', verification('prefixed@example.test'), 60_000);
    expect(await (await raw()).exists('fleet-a:prefixed@example.test')).toBe(1);
    expect(await (await open()).get('prefixed@example.test')).toBeUndefined();
  });
});

describe('RedisVerificationCache when Redis dies', () => {
  it('answers undefined and drops writes, quickly, reporting the outage once', async () => {
    const redis = await startRedis();
    const errors: Error[] = [];
    const cache = new RedisVerificationCache(redis.url, { onError: (e) => errors.push(e) });
    try {
      await cache.set('before@example.test', verification('before@example.test'), 60_000);
      expect(await cache.get('before@example.test')).toEqual(verification('before@example.test'));

      await redis.stop();
      const read = await within(2_000, cache.get('before@example.test'));
      expect(read.value).toBeUndefined();
      const write = await within(2_000, cache.set('after@example.test', verification('after@example.test'), 60_000));
      expect(write.value).toBeUndefined();
      // Once Redis is known to be gone, calls fail at once rather than each waiting out a timeout.
      const later = await within(2_000, Promise.all([1, 2, 3, 4, 5].map(() => cache.get('before@example.test'))));
      expect(later.value).toEqual([undefined, undefined, undefined, undefined, undefined]);
      expect(later.ms).toBeLessThan(500);

      expect(errors).toHaveLength(1);
      await within(2_000, cache.close());
    } finally {
      await redis.stop();
    }
  });

  it('does not stall when Redis hangs without closing the connection', async () => {
    const redis = await startRedis();
    const errors: Error[] = [];
    const cache = new RedisVerificationCache(redis.url, { onError: (e) => errors.push(e) });
    try {
      await cache.set('hung@example.test', verification('hung@example.test'), 60_000);
      redis.process.kill('SIGSTOP');
      expect((await within(2_000, cache.get('hung@example.test'))).value).toBeUndefined();
      expect((await within(2_000, cache.set('hung@example.test', verification('hung@example.test'), 1000))).value).toBeUndefined();
      expect(errors.map((e) => e.message)).toEqual(['Command timed out']);
      await within(2_000, cache.close());
    } finally {
      await redis.stop(); // SIGKILL ends a stopped process too
    }
  });

  it('does not stall when Redis was never there', async () => {
    const errors: Error[] = [];
    const cache = new RedisVerificationCache(`redis://127.0.0.1:${await freePort()}/0`, { onError: (e) => errors.push(e) });
    expect((await within(2_000, cache.get('x@example.test'))).value).toBeUndefined();
    expect((await within(2_000, cache.set('x@example.test', verification('x@example.test'), 1000))).value).toBeUndefined();
    expect(errors).toHaveLength(1);
    await within(2_000, cache.close());
  });
});

describe('cacheFromUrl', () => {
  it('makes a Redis cache for redis:// and rediss:// URLs', async () => {
    for (const url of ['redis://127.0.0.1:1/0', 'rediss://user:secret@127.0.0.1:1/2', 'REDIS://127.0.0.1:1']) {
      const cache = cacheFromUrl(url, { onError: () => undefined });
      expect(cache).toBeInstanceOf(RedisVerificationCache);
      await cache.close?.();
    }
  });

  it('refuses other schemes and non-URLs with a clear error that leaves the password out', () => {
    expect(() => cacheFromUrl('memcached://127.0.0.1:11211')).toThrow(/unsupported .*memcached:.*redis:\/\//);
    expect(() => cacheFromUrl('http://user:hunter2@cache.test')).toThrow(/^(?!.*hunter2)/);
    expect(() => cacheFromUrl('127.0.0.1:6379')).toThrow(/not a valid URL|unsupported/);
    expect(() => cacheFromUrl('not a url')).toThrow(/not a valid URL/);
  });
});
