import { afterAll, describe, expect, it } from 'vitest';
import { RedisVerificationCache, verifyAddress } from '../../src/index.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { fakeResolver, scriptedServer } from './scripted-smtp.js';

let redis: RedisServer | undefined;
afterAll(async () => redis?.stop());

describe('verifyAddress with a Redis cache', () => {
  it('shares a result between two milter processes (two Redis connections): the second asks no server', async () => {
    redis = await startRedis();
    const server = await scriptedServer();
    const resolver = fakeResolver({ 'example.test': { mx: [{ exchange: 'mx.example.test', priority: 10 }], a: { 'mx.example.test': ['127.0.0.1'] } } });
    const first = new RedisVerificationCache(redis.url);
    const second = new RedisVerificationCache(redis.url);
    try {
      const options = { resolver, port: server.port, allowLoopback: true, heloName: 'verifier.test' };
      const probed = await verifyAddress('user@example.test', { ...options, cache: first });
      expect(probed).toMatchObject({ result: 'valid', fromCache: false });
      const shared = await verifyAddress('user@example.test', { ...options, cache: second });
      expect(shared).toMatchObject({ result: 'valid', fromCache: true, mx: 'mx.example.test' });
      expect(server.sessions.length).toBe(1);
    } finally {
      await Promise.all([first.close(), second.close(), server.close()]);
    }
  });
});
