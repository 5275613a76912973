export { verifyAddress, verifyAddresses, closeVerificationCaches, DEFAULT_TTLS } from './verify.js';
export { MemoryVerificationCache } from './memory-cache.js';
export type { CacheTtls, Verification, VerificationCache, VerificationResult, VerifyOptions } from './types.js';
export { RedisVerificationCache, cacheFromUrl, type RedisCacheOptions } from './redis-cache.js';
