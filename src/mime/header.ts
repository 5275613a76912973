import { isUtf8 } from 'node:buffer';
import libmime from 'libmime';
import type { ByteSource } from './byte-source.js';
import { decodeCharset } from './charset.js';
import type { DecodeContext } from './decode-context.js';
import { decodeEncodedWords, type EncodedWordIssues } from './encoded-words.js';

export type LineEnding = '\r\n' | '\n' | '\r';

/**
 * One header field. A parsed field keeps its source range and is written back byte for byte; a field
 * set through the API is generated (encoded and folded) only when written, with the part's line ending.
 */
export class Header {
  readonly name: string;
  private readonly source: ByteSource | undefined;
  /** Field range including its final line break; valueStart is just after the colon. */
  private readonly start: number;
  private readonly end: number;
  private readonly valueStart: number;
  private readonly generatedValue: string | undefined;
  private readonly ctx: DecodeContext;
  private cachedRawValue: string | undefined;
  private crLines = false;

  private constructor(
    name: string,
    source: ByteSource | undefined,
    start: number,
    valueStart: number,
    end: number,
    generatedValue: string | undefined,
    ctx: DecodeContext,
  ) {
    this.name = name;
    this.source = source;
    this.start = start;
    this.valueStart = valueStart;
    this.end = end;
    this.generatedValue = generatedValue;
    this.ctx = ctx;
  }

  /** `crLines`: the message ends its lines with a bare CR, so a CR in a field is a line break, not a trick. */
  static parsed(name: string, source: ByteSource, start: number, valueStart: number, end: number, ctx: DecodeContext, crLines = false): Header {
    const header = new Header(name, source, start, valueStart, end, undefined, ctx);
    header.crLines = crLines;
    return header;
  }

  static generated(name: string, value: string, ctx: DecodeContext): Header {
    // A name must be one (RFC 5322 ftext: printable ASCII but the colon), or a caller could write whole
    // fields with it (a line break, a colon); a line break (or a NUL, which ends the value for the MTA) in a value would too: it is flattened.
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) throw new RangeError(`header field name ${JSON.stringify(name)}: printable ASCII without spaces or a colon`);
    return new Header(name, undefined, 0, 0, 0, value.replace(/[\r\n\0]+/g, ' '), ctx);
  }

  /** A junk line kept from a header block (no field name): it matches no lookup. */
  get isInvalid(): boolean {
    return this.name === '';
  }

  get isGenerated(): boolean {
    return this.source === undefined;
  }

  private lowerName: string | undefined;

  /** Lower-case name, for lookups (made on first use: most fields are never looked up). */
  get key(): string {
    return (this.lowerName ??= this.name.toLowerCase());
  }

  /** Byte offset of the field in its source (0 for generated fields). */
  get offset(): number {
    return this.start;
  }

  /**
   * The value unfolded and turned into text, but not RFC 2047-decoded: what structured-field parsers
   * (Content-Type parameters) need. Raw 8-bit bytes are read as UTF-8 (RFC 6532) or the fallback charset.
   */
  get rawValue(): string {
    if (this.cachedRawValue !== undefined) return this.cachedRawValue;
    let text: string;
    let bytes: Buffer;
    if (this.generatedValue !== undefined) text = this.generatedValue;
    else {
      const source = this.source as ByteSource;
      if (source.isAscii(this.valueStart, this.end)) text = source.latin1(this.valueStart, this.end);
      else if (isUtf8((bytes = source.slice(this.valueStart, this.end)))) text = bytes.toString('utf8');
      else {
        this.ctx.report('invalid-8bit-header', this.start, this.name);
        text = decodeCharset(bytes, this.ctx.fallbackCharset, this.ctx.fallbackCharset).text;
      }
      if (!this.crLines && text.includes('\r')) {
        // A CR that is not part of a line break: some programs end the line there (MIMEDefang flags it).
        const folded = text.replace(/\r\n/g, '');
        if (folded.includes('\r')) this.ctx.report('bare-cr-in-header', this.start, this.name);
      }
      if (text.includes('\n') || text.includes('\r')) text = text.replace(/\r\n|\n|\r/g, '');
    }
    this.cachedRawValue = text.trim();
    return this.cachedRawValue;
  }

  /** The value as a person would read it: unfolded, encoded-words decoded. */
  get value(): string {
    const issues: EncodedWordIssues = { unknownCharsets: [], invalidWords: 0 };
    const text = decodeEncodedWords(this.rawValue, this.ctx.fallbackCharset, issues);
    for (const charset of issues.unknownCharsets) this.ctx.report('unknown-charset', this.start, charset);
    if (issues.invalidWords > 0) this.ctx.report('invalid-encoded-word', this.start, this.name);
    return text;
  }

  /** The field's bytes as written (parsed) or as they will be written (generated). */
  toBuffer(eol: LineEnding = '\r\n'): Buffer {
    if (this.source) return this.source.slice(this.start, this.end);
    return Buffer.from(formatField(this.name, this.generatedValue as string, eol), 'latin1');
  }

  /** Appends the field's bytes to `out` (views of the source where possible). */
  appendTo(out: { push(chunk: Buffer): unknown }, eol: LineEnding): void {
    if (this.source) this.source.appendViews(this.start, this.end, out);
    else out.push(this.toBuffer(eol));
  }
}

/** `Name: value` encoded (RFC 2047 for non-ASCII words) and folded at 76 columns, ending in `eol`. */
export function formatField(name: string, value: string, eol: LineEnding): string {
  const encoded = /[^\x00-\x7f]/.test(value) ? libmime.encodeWords(value, 'Q', 52) : value;
  const folded = libmime.foldLines(`${name}: ${encoded}`, 76);
  return (eol === '\r\n' ? folded : folded.replace(/\r\n/g, eol)) + eol;
}
