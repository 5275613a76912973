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
  private readonly stack: Buffer[] = [];

  constructor(src: ByteSource, eolByte: number) {
    this.src = src;
    this.eolByte = eolByte;
    this.needle = Buffer.from([eolByte, DASH, DASH]);
  }

  get depth(): number {
    return this.stack.length;
  }

  /** Opens a multipart; returns false when an enclosing multipart already uses this boundary. */
  push(boundary: string): boolean {
    const bytes = Buffer.from(boundary, 'latin1');
    const unique = !this.stack.some((b) => b.equals(bytes));
    this.stack.push(bytes);
    return unique;
  }

  pop(): void {
    this.stack.pop();
  }

  /** The delimiter on the line that starts at `lineStart`, if that line is one. */
  matchLine(lineStart: number): Omit<Delimiter, 'eolStart'> | undefined {
    const src = this.src;
    const len = src.length;
    if (this.stack.length === 0 || lineStart + 2 > len) return undefined;
    if (src.byteAt(lineStart) !== DASH || src.byteAt(lineStart + 1) !== DASH) return undefined;
    for (let level = this.stack.length - 1; level >= 0; level--) {
      const boundary = this.stack[level] as Buffer;
      if (!src.equalsAt(lineStart + 2, boundary)) continue;
      let pos = lineStart + 2 + boundary.length;
      const close = pos + 1 < len && src.byteAt(pos) === DASH && src.byteAt(pos + 1) === DASH;
      const markerEnd = close ? pos + 2 : pos;
      // Transport padding (RFC 2046 5.1.1) may follow; in LF mode a CR before the LF is part of the break.
      pos = markerEnd;
      while (pos < len) {
        const c = src.byteAt(pos);
        if (c === 0x20 || c === 0x09 || (c === CR && this.eolByte === LF)) pos++;
        else break;
      }
      if (pos < len && src.byteAt(pos) !== this.eolByte) continue;
      return { lineStart, level, close, markerEnd, lineEnd: pos < len ? pos + 1 : len };
    }
    return undefined;
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
