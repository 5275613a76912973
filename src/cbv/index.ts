export { verifyAddress, verifyAddresses, DEFAULT_TTLS } from './verify.js';
export { MemoryVerificationCache } from './memory-cache.js';
export type { CacheTtls, Verification, VerificationCache, VerificationResult, VerifyOptions } from './types.js';
