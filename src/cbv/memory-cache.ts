import type { Verification, VerificationCache } from './types.js';

/**
 * The default cache: in process, with per-entry expiry and a size bound (oldest entries go first), so that
 * a flood of distinct senders cannot grow it without end.
 */
export class MemoryVerificationCache implements VerificationCache {
  private readonly entries = new Map<string, { value: Verification; expires: number }>();
  private readonly maxEntries: number;

  constructor(maxEntries = 100_000) {
    this.maxEntries = maxEntries;
  }

  async get(key: string): Promise<Verification | undefined> {
    return this.lookup(key);
  }

  /** Synchronous lookup: the cached path of a verification needs no promise round trip. */
  lookup(key: string): Verification | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  async set(key: string, value: Verification, ttlMs: number): Promise<void> {
    this.entries.delete(key);
    this.entries.set(key, { value, expires: Date.now() + ttlMs });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  get size(): number {
    return this.entries.size;
  }
}
