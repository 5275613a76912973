import type { ByteSource } from './byte-source.js';

/** A delimiter line found in the source. */
export interface Delimiter {
  /** Where the line break that precedes the line starts: RFC 2046 makes it part of the delimiter. */
  eolStart: number;
  /** The first "-" of the line. */
  lineStart: number;
  /** Index in the boundary stack of the boundary it belongs to (0 = outermost). */
  level: number;
  close: boolean;
  /** Just after `--boundary` or `--boundary--`. */
  markerEnd: number;
  /** Just after the line's own line break (or the end of the source). */
  lineEnd: number;
}

const DASH = 0x2d;
const LF = 0x0a;
const CR = 0x0d;
const LF_DASHES = Buffer.from([LF, DASH, DASH]);
const CR_DASHES = Buffer.from([CR, DASH, DASH]);
/** Transport padding accepted after a delimiter: SMTP's line limit (mailsplit uses the same). */
const MAX_PADDING = 998;

/**
 * Finds delimiter lines of the multiparts that are open at a point of the parse. The boundaries form a
 * stack; a line is checked innermost first, as GMime does, so a nested multipart that reuses its
 * parent's boundary takes the delimiters. Candidate lines are found with a native search for
 * "<eol>--", so the bulk of a body (base64 has no "-") is skipped at memchr speed.
 */
export class BoundaryScanner {
  private readonly src: ByteSource;
  /** The byte that ends a line: LF, or CR for messages that have no LF at all (old Mac mail). */
  private readonly eolByte: number;
  private readonly needle: Buffer;
  /** Open boundaries, outermost first. */
  private readonly stack: string[] = [];
  /** Boundary text -> the levels that use it, innermost last: one lookup per candidate line. */
  private readonly levels = new Map<string, number[]>();
  private longest = 0;
  /** Lengths of the open boundaries: most "--" lines (signatures, rulers) are rejected without a string. */
  private readonly lengths = new Map<number, number>();

  constructor(src: ByteSource, eolByte: number) {
    this.src = src;
    this.eolByte = eolByte;
    this.needle = eolByte === LF ? LF_DASHES : CR_DASHES;
  }

  get depth(): number {
    return this.stack.length;
  }

  /** Opens a multipart; returns false when an enclosing multipart already uses this boundary. */
  push(boundary: string): boolean {
    const level = this.stack.length;
    this.stack.push(boundary);
    this.longest = Math.max(this.longest, boundary.length);
    this.lengths.set(boundary.length, (this.lengths.get(boundary.length) ?? 0) + 1);
    const users = this.levels.get(boundary);
    if (users) {
      users.push(level);
      return false;
    }
    this.levels.set(boundary, [level]);
    return true;
  }

  pop(): void {
    const boundary = this.stack.pop();
    if (boundary === undefined) return;
    const users = this.levels.get(boundary) as number[];
    users.pop();
    if (users.length === 0) this.levels.delete(boundary);
    const count = (this.lengths.get(boundary.length) as number) - 1;
    if (count === 0) this.lengths.delete(boundary.length);
    else this.lengths.set(boundary.length, count);
  }

  /**
   * The delimiter on the line that starts at `lineStart`, if that line is one: `--boundary` or
   * `--boundary--`, then transport padding (RFC 2046 5.1.1), then the line break or the end of input.
   */
  matchLine(lineStart: number): Omit<Delimiter, 'eolStart'> | undefined {
    const src = this.src;
    const len = src.length;
    if (this.stack.length === 0 || lineStart + 2 > len) return undefined;
    if (src.byteAt(lineStart) !== DASH || src.byteAt(lineStart + 1) !== DASH) return undefined;
    const window = Math.min(len, lineStart + 2 + this.longest + 2 + MAX_PADDING + 1);
    let eolAt = src.indexOfByte(this.eolByte, lineStart + 2, window);
    if (eolAt < 0) {
      if (window < len) return undefined;
      eolAt = len;
    }
    let end = eolAt;
    while (end > lineStart + 2) {
      const c = src.byteAt(end - 1);
      if (c === 0x20 || c === 0x09 || (c === CR && this.eolByte === LF)) end--;
      else break;
    }
    const length = end - lineStart - 2;
    if (!this.lengths.has(length) && !this.lengths.has(length - 2)) return undefined;
    const text = src.latin1(lineStart + 2, end);
    let users = this.levels.get(text);
    let close = false;
    if (users === undefined && text.endsWith('--')) {
      users = this.levels.get(text.slice(0, -2));
      close = true;
    }
    if (users === undefined) return undefined;
    const level = users[users.length - 1] as number;
    return { lineStart, level, close, markerEnd: end, lineEnd: eolAt < len ? eolAt + 1 : len };
  }

  /** Whether `pos` is the start of a line. */
  isLineStart(pos: number): boolean {
    return pos === 0 || this.src.byteAt(pos - 1) === this.eolByte;
  }

  /**
   * The first delimiter line at or after `from`. `segmentStart` is where the current content began: the
   * line break before the delimiter is only claimed when it lies inside that content.
   */
  next(from: number, segmentStart: number): Delimiter | undefined {
    if (this.stack.length === 0) return undefined;
    if (this.isLineStart(from)) {
      const m = this.matchLine(from);
      if (m) return { ...m, eolStart: this.eolStartBefore(from, segmentStart) };
    }
    let pos = from;
    for (;;) {
      const hit = this.src.indexOf(this.needle, pos);
      if (hit < 0) return undefined;
      const m = this.matchLine(hit + 1);
      if (m) return { ...m, eolStart: this.eolStartBefore(hit + 1, segmentStart) };
      pos = hit + 1;
    }
  }

  private eolStartBefore(lineStart: number, segmentStart: number): number {
    if (lineStart <= segmentStart) return lineStart;
    const before = lineStart - 1;
    if (this.eolByte === LF && before > segmentStart && this.src.byteAt(before - 1) === CR) return before - 1;
    return before;
  }
}
