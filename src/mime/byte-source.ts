/**
 * The bytes of a message as they arrived, kept once.
 *
 * A message read from a file is one Buffer; a message read from a stream (or handed over by the milter in
 * body chunks) is a list of blocks, so it never has to be copied into one contiguous Buffer. Every part of
 * the tree keeps offsets into its source and serializes an untouched range by handing out views of it.
 */
export class ByteSource {
  readonly length: number;
  /** The whole source when it is one block: the fast path for every method, and for hot loops. */
  readonly flat: Buffer | undefined;
  private readonly blocks: readonly Buffer[];
  /** Global offset of each block's first byte. */
  private readonly starts: readonly number[];

  private constructor(blocks: readonly Buffer[]) {
    this.blocks = blocks;
    const starts: number[] = [];
    let total = 0;
    for (const block of blocks) {
      starts.push(total);
      total += block.length;
    }
    this.starts = starts;
    this.length = total;
    this.flat = blocks.length === 1 ? blocks[0] : blocks.length === 0 ? Buffer.alloc(0) : undefined;
  }

  static from(bytes: Uint8Array | string): ByteSource {
    if (typeof bytes === 'string') return new ByteSource([Buffer.from(bytes, 'utf8')]);
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return new ByteSource([buf]);
  }

  /** Blocks are kept as given (no copy); empty blocks are dropped. */
  static fromBlocks(blocks: readonly Uint8Array[]): ByteSource {
    const kept: Buffer[] = [];
    for (const b of blocks) {
      if (b.length > 0) kept.push(Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    }
    return new ByteSource(kept);
  }

  /** Index of the block holding global offset `pos` (pos < length). */
  private blockIndex(pos: number): number {
    const starts = this.starts;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((starts[mid] as number) <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  byteAt(pos: number): number {
    if (this.flat) return this.flat[pos] as number;
    const i = this.blockIndex(pos);
    return (this.blocks[i] as Buffer)[pos - (this.starts[i] as number)] as number;
  }

  /** First position p in [from, to) with byteAt(p) === byte, or -1. */
  indexOfByte(byte: number, from: number, to: number = this.length): number {
    if (from >= to) return -1;
    if (this.flat) {
      const p = this.flat.indexOf(byte, from);
      return p >= 0 && p < to ? p : -1;
    }
    for (let i = this.blockIndex(from); i < this.blocks.length; i++) {
      const start = this.starts[i] as number;
      if (start >= to) return -1;
      const block = this.blocks[i] as Buffer;
      const p = block.indexOf(byte, Math.max(0, from - start));
      if (p >= 0) return start + p < to ? start + p : -1;
    }
    return -1;
  }

  /** First position p in [from, to) where `needle` occurs entirely inside [from, to), or -1. */
  indexOf(needle: Buffer, from: number, to: number = this.length): number {
    const n = needle.length;
    if (from + n > to) return -1;
    if (this.flat) {
      const p = this.flat.indexOf(needle, from);
      return p >= 0 && p + n <= to ? p : -1;
    }
    for (let i = this.blockIndex(from); i < this.blocks.length; i++) {
      const start = this.starts[i] as number;
      if (start >= to) return -1;
      const block = this.blocks[i] as Buffer;
      const local = block.indexOf(needle, Math.max(0, from - start));
      if (local >= 0) {
        const p = start + local;
        return p + n <= to ? p : -1;
      }
      // A match may straddle the seam with the next block(s).
      const end = start + block.length;
      for (let p = Math.max(from, end - n + 1); p < end && p + n <= to; p++) {
        if (this.equalsAt(p, needle)) return p;
      }
    }
    return -1;
  }

  /** Whether the bytes at `pos` equal `needle` (false past the end). */
  equalsAt(pos: number, needle: Buffer): boolean {
    const n = needle.length;
    if (pos + n > this.length) return false;
    if (this.flat) return this.flat.compare(needle, 0, n, pos, pos + n) === 0;
    for (let k = 0; k < n; k++) if (this.byteAt(pos + k) !== needle[k]) return false;
    return true;
  }

  /** The bytes of [start, end): a view when they lie in one block, a copy otherwise. */
  slice(start: number, end: number): Buffer {
    if (this.flat) return this.flat.subarray(start, end);
    if (start >= end) return Buffer.alloc(0);
    const i = this.blockIndex(start);
    const blockStart = this.starts[i] as number;
    const block = this.blocks[i] as Buffer;
    if (end <= blockStart + block.length) return block.subarray(start - blockStart, end - blockStart);
    const parts: Buffer[] = [];
    this.appendViews(start, end, parts);
    return Buffer.concat(parts, end - start);
  }

  /** Appends views covering [start, end) to `out`, without copying. */
  appendViews(start: number, end: number, out: { push(chunk: Buffer): unknown }): void {
    if (start >= end) return;
    if (this.flat) {
      out.push(this.flat.subarray(start, end));
      return;
    }
    for (let i = this.blockIndex(start); i < this.blocks.length && start < end; i++) {
      const blockStart = this.starts[i] as number;
      const block = this.blocks[i] as Buffer;
      const blockEnd = blockStart + block.length;
      const stop = Math.min(end, blockEnd);
      out.push(block.subarray(start - blockStart, stop - blockStart));
      start = stop;
    }
  }

  /** Whether [start, end) is all 7-bit. */
  isAscii(start: number, end: number): boolean {
    const bytes = this.flat ?? this.slice(start, end);
    const offset = this.flat ? 0 : start;
    for (let i = start - offset; i < end - offset; i++) if ((bytes[i] as number) > 0x7f) return false;
    return true;
  }

  /** [start, end) as a Latin-1 string: one char per byte, for ASCII protocol text. */
  latin1(start: number, end: number): string {
    // toString with a range avoids creating a view first (this is on the per-header hot path).
    return this.flat ? this.flat.toString('latin1', start, end) : this.slice(start, end).toString('latin1');
  }
}
