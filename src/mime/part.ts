import libmime from 'libmime';
import type { ByteSource } from './byte-source.js';
import { decodeCharset } from './charset.js';
import { isMediaType, param, parseField, type FieldValue } from './content-type.js';
import type { DecodeContext } from './decode-context.js';
import type { DefectLog } from './defect-log.js';
import type { DefectCode } from './defects.js';
import {
  chooseTransferEncoding,
  decodeTransferEncoding,
  encodeContent,
  parseTransferEncoding,
  type ChosenEncoding,
} from './encodings/transfer-encoding.js';
import type { Header, LineEnding } from './header.js';
import { HeaderList } from './header-list.js';
import { serializeBody } from './serializer.js';

export type PartKind = 'multipart' | 'message' | 'leaf';

export interface Range {
  start: number;
  end: number;
}

/**
 * Where a parsed part lies in its source. Serializing an unchanged part copies [start, end); a changed
 * one is reassembled from these pieces, so everything it did not change is still copied as it was.
 */
export interface PartLayout {
  source: ByteSource;
  start: number;
  end: number;
  /** End of an mbox `From ` line at the very top (= start when there is none). */
  prefixEnd: number;
  /** Header bytes past `maxHeaderBytes`, kept raw: [overflowStart, separatorStart). */
  overflowStart: number | undefined;
  /** The empty line ending the header block: [separatorStart, bodyStart) (may be empty). */
  separatorStart: number;
  bodyStart: number;
  /** Multipart only: preamble [bodyStart, preambleEnd), close delimiter, epilogue [epilogueStart, end). */
  preambleEnd: number;
  close: Range | undefined;
  epilogueStart: number;
}

/** New content set through the API: kept decoded, encoded when written with the part's line ending. */
interface NewBody {
  data: Buffer;
  encoding: ChosenEncoding | '8bit';
}

export interface SetContentOptions {
  /** "type/subtype"; defaults to the part's current type (application/octet-stream for containers). */
  contentType?: string;
  /** File name for Content-Disposition (and Content-Type name); null removes it; undefined keeps it. */
  filename?: string | null;
}

/** Holder of a message's root part, so that replacing the root updates the message. */
export interface RootHolder {
  root: MimePart;
}

const ASCII_ONLY = /^[\x00-\x7f]*$/;

/** The media type of a simple Content-Type value (no quotes or comments before the first ";"), lower-case. */
function quickMediaType(raw: string): string | undefined {
  const semicolon = raw.indexOf(';');
  const head = (semicolon < 0 ? raw : raw.slice(0, semicolon)).trim().toLowerCase();
  return isMediaType(head) ? head : undefined;
}

/**
 * One MIME entity: headers plus a body that is a leaf, a multipart (children), or an embedded message
 * (message/rfc822: one child, the embedded message). Decoding is lazy; changes mark the part and its
 * ancestors dirty so the serializer regenerates only what changed.
 */
export class MimePart implements DecodeContext {
  /** @internal */ layout: PartLayout | undefined;
  /** @internal The delimiter line before this part in its parent's source, when parsed. */
  delimiter: Range | undefined;
  /** @internal The subtree differs from its source and must be reassembled. */
  dirty: boolean;
  /** @internal Line ending of the part's own header block (undefined: inherited). */
  eol: LineEnding | undefined;
  /** @internal The multipart boundary the children were parsed (or will be written) with. */
  boundary: string | undefined;
  /** @internal message/rfc822 whose body is base64 or quoted-printable encoded. */
  encodedMessage = false;
  /** @internal Content-Type when none is given (message/rfc822 inside multipart/digest). */
  defaultType: string;
  /** @internal */ log: DefectLog | undefined;
  /** @internal */ holder: RootHolder | undefined;
  /** @internal */ newBody: NewBody | undefined;

  kind: PartKind;
  parent: MimePart | undefined;
  private childList: MimePart[] = [];
  readonly headers: HeaderList;
  /** Parsed structured fields, created on first use (most parts never need one beyond Content-Type). */
  private fieldCache: Map<string, FieldValue | undefined> | undefined;
  private nameCache: string[] | undefined;

  /** @internal Use parseMessage or createPart. */
  constructor(init: {
    kind: PartKind;
    fields?: Header[];
    layout: PartLayout | undefined;
    log: DefectLog | undefined;
    defaultType?: string;
    eol?: LineEnding | undefined;
  }) {
    this.kind = init.kind;
    this.layout = init.layout;
    this.log = init.log;
    this.defaultType = init.defaultType ?? 'text/plain';
    this.eol = init.eol;
    this.dirty = init.layout === undefined;
    this.headers = new HeaderList(init.fields ?? [], this, () => {
      this.fieldCache = undefined;
      this.nameCache = undefined;
      this.markDirty();
    });
  }

  // --- DecodeContext: where lazily found defects go -------------------------------------------------

  get fallbackCharset(): string {
    return this.log?.fallbackCharset ?? 'windows-1252';
  }

  report(code: DefectCode, offset: number, detail?: string): void {
    this.log?.add(this, code, offset, detail);
  }

  // --- Tree -------------------------------------------------------------------------------------------

  get children(): readonly MimePart[] {
    return this.childList;
  }

  /** The embedded message of a message/rfc822 part. */
  get message(): MimePart | undefined {
    return this.kind === 'message' ? this.childList[0] : undefined;
  }

  /** IMAP-style part number: "" for the root, "1", "2.1"...; a message/rfc822 part's message is "N.1". */
  get path(): string {
    const numbers: number[] = [];
    for (let p: MimePart = this; p.parent; p = p.parent) numbers.push(p.parent.childList.indexOf(p) + 1);
    return numbers.reverse().join('.');
  }

  /** Depth-first, root first, into embedded messages too. */
  *walk(): Generator<MimePart> {
    const stack: MimePart[] = [this];
    while (stack.length > 0) {
      const part = stack.pop() as MimePart;
      yield part;
      for (let i = part.childList.length - 1; i >= 0; i--) stack.push(part.childList[i] as MimePart);
    }
  }

  /** @internal Used by the parser to attach children. */
  attachChild(child: MimePart): void {
    child.parent = this;
    this.childList.push(child);
  }

  /** Appends a part to a multipart (moving it out of any tree it was in). */
  append(child: MimePart): void {
    if (this.kind !== 'multipart') throw new TypeError(`append: ${this.contentType} is not a multipart`);
    child.detach();
    child.delimiter = undefined;
    child.adopt(this.log);
    this.attachChild(child);
    this.markDirty();
  }

  /** Puts `other` where this part is; it keeps this part's delimiter line in the parent. */
  replaceWith(other: MimePart): void {
    if (other === this) return;
    other.detach();
    other.adopt(this.log);
    const parent = this.parent;
    if (parent) {
      const index = parent.childList.indexOf(this);
      parent.childList[index] = other;
      other.parent = parent;
      other.delimiter = this.delimiter;
      this.parent = undefined;
      this.delimiter = undefined;
      parent.markDirty();
    } else if (this.holder) {
      this.holder.root = other;
      other.holder = this.holder;
      this.holder = undefined;
    }
  }

  /** Removes this part from its multipart. */
  remove(): void {
    const parent = this.parent;
    if (!parent) throw new TypeError('remove: the root part cannot be removed; use replaceWith');
    if (parent.kind !== 'multipart') throw new TypeError('remove: remove the message/rfc822 part itself');
    const index = parent.childList.indexOf(this);
    const nextSibling = parent.childList[index + 1];
    // The first delimiter may have no line break before it; the next part inherits it.
    if (index === 0 && nextSibling) nextSibling.delimiter = this.delimiter;
    parent.childList.splice(index, 1);
    this.parent = undefined;
    this.delimiter = undefined;
    parent.markDirty();
  }

  private detach(): void {
    if (this.parent) {
      if (this.parent.kind === 'multipart') this.remove();
      else throw new TypeError('cannot move the message out of a message/rfc822 part; move that part');
    }
  }

  private adopt(log: DefectLog | undefined): void {
    for (const part of this.walk()) part.log = log;
  }

  /** @internal */
  markDirty(): void {
    for (let p: MimePart | undefined = this; p && !p.dirty; p = p.parent) p.dirty = true;
  }

  // --- Header-derived properties ------------------------------------------------------------------

  /** @internal Content-Type / Content-Disposition parsed once and cached until the headers change. */
  field(name: string): FieldValue | undefined {
    this.fieldCache ??= new Map();
    if (this.fieldCache.has(name)) return this.fieldCache.get(name);
    const header = this.headers.getHeader(name);
    const value = header ? parseField(header, this) : undefined;
    this.fieldCache.set(name, value);
    return value;
  }

  /** Lower-case "type/subtype"; the RFC 2045/2046 default when missing or unparseable. */
  get contentType(): string {
    if (this.fieldCache?.has('content-type') !== true) {
      // Most Content-Type values are plain `type/subtype; ...`: read the type without parsing parameters.
      const header = this.headers.getHeader('content-type');
      if (!header) return this.defaultType;
      const quick = quickMediaType(header.rawValue);
      if (quick !== undefined) return quick;
    }
    const declared = this.field('content-type')?.value;
    return declared !== undefined && isMediaType(declared) ? declared : this.defaultType;
  }

  /** Content-Type parameters, decoded; the first occurrence of each name. */
  get contentTypeParams(): ReadonlyMap<string, string> {
    const map = new Map<string, string>();
    for (const p of this.field('content-type')?.params ?? []) if (!map.has(p.name)) map.set(p.name, p.value);
    return map;
  }

  /** Every Content-Type parameter in order, duplicates kept (two `boundary=` are a known evasion). */
  get contentTypeParameters(): readonly { name: string; value: string }[] {
    return this.field('content-type')?.params ?? [];
  }

  /** Declared charset, lower-case. */
  get charset(): string | undefined {
    return param(this.field('content-type'), 'charset')?.trim().toLowerCase();
  }

  /** Declared Content-Transfer-Encoding, lower-case ('7bit' when missing). */
  get transferEncoding(): string {
    const value = this.headers.get('content-transfer-encoding');
    return value === undefined ? '7bit' : value.trim().toLowerCase();
  }

  /** Content-Disposition type, lower-case, or undefined. */
  get disposition(): string | undefined {
    const value = this.field('content-disposition')?.value;
    return value === '' ? undefined : value;
  }

  /**
   * Every candidate file name, decoded, without exact duplicates: Content-Disposition filename (RFC 2231
   * forms first) then Content-Type name, from every such header. Clients differ in which they show.
   */
  get filenames(): string[] {
    this.nameCache ??= this.collectFilenames();
    return [...this.nameCache];
  }

  private collectFilenames(): string[] {
    const names: string[] = [];
    const collect = (headerName: string, paramName: string): void => {
      for (const header of this.headers.getHeaders(headerName)) {
        const params = parseField(header, this).params.filter((p) => p.name === paramName);
        for (const p of [...params.filter((x) => x.rfc2231), ...params.filter((x) => !x.rfc2231)]) {
          if (p.value !== '' && !names.includes(p.value)) names.push(p.value);
        }
      }
    };
    collect('content-disposition', 'filename');
    collect('content-type', 'name');
    return names;
  }

  /** The name a mail client would most likely show, or undefined. */
  get filename(): string | undefined {
    return this.filenames[0];
  }

  /** Bytes before the first delimiter of a parsed multipart (clients do not show them; some parsers read them). */
  get preamble(): Buffer {
    const layout = this.layout;
    return layout && this.kind === 'multipart' ? layout.source.slice(layout.bodyStart, layout.preambleEnd) : Buffer.alloc(0);
  }

  /** Bytes after the close delimiter of a parsed multipart. */
  get epilogue(): Buffer {
    const layout = this.layout;
    return layout && this.kind === 'multipart' ? layout.source.slice(layout.epilogueStart, layout.end) : Buffer.alloc(0);
  }

  /** Size in bytes of the body as transported (encoded). */
  get size(): number {
    if (this.newBody) return this.encodedNewBody(this.effectiveEol).length;
    if (this.layout && !this.dirty) return this.layout.end - this.layout.bodyStart;
    return this.bodyBytes().length;
  }

  // --- Content ------------------------------------------------------------------------------------

  /** @internal The line ending used for anything generated in this part. */
  get effectiveEol(): LineEnding {
    for (let p: MimePart | undefined = this; p; p = p.parent) if (p.eol) return p.eol;
    return '\r\n';
  }

  /** @internal Encoded bytes of content set with setContent. */
  encodedNewBody(eol: LineEnding): Buffer {
    const body = this.newBody as NewBody;
    return body.encoding === '8bit' ? body.data : encodeContent(body.data, body.encoding, eol);
  }

  /** The body as transported (still transfer-encoded). */
  bodyBytes(): Buffer {
    return serializeBody(this);
  }

  /** Decoded body bytes: base64, quoted-printable, x-uuencode undone; others as they are. */
  content(): Buffer {
    if (this.newBody) return this.newBody.data;
    const raw = this.bodyBytes();
    if (this.kind === 'multipart') return raw;
    if (this.kind === 'message' && !this.encodedMessage) return raw;
    const declared = this.transferEncoding;
    const encoding = parseTransferEncoding(declared) ?? 'binary';
    const decoded = decodeTransferEncoding(encoding, raw);
    if (decoded.invalid) {
      const code = encoding === 'base64' ? 'invalid-base64' : encoding === 'x-uuencode' ? 'invalid-uuencode' : 'invalid-quoted-printable';
      this.report(code, this.layout?.bodyStart ?? 0);
    }
    return decoded.data;
  }

  /** Decoded text: the declared charset, else UTF-8 when valid, else the fallback charset. */
  text(): string {
    const decoded = decodeCharset(this.content(), this.charset, this.fallbackCharset);
    if (decoded.unknownCharset !== undefined) this.report('unknown-charset', this.layout?.bodyStart ?? 0, decoded.unknownCharset);
    return decoded.text;
  }

  /**
   * Replaces the body with new content and re-encodes it: 7bit, quoted-printable or base64, whichever
   * suits. A multipart or message part becomes a leaf. Strings are written as UTF-8.
   */
  setContent(data: Uint8Array | string, options: SetContentOptions = {}): void {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const previousType = this.kind === 'leaf' ? this.contentType : 'application/octet-stream';
    const type = (options.contentType ?? previousType).trim().toLowerCase();
    if (!isMediaType(type)) throw new TypeError(`setContent: "${type}" is not a type/subtype`);
    const filename = options.filename === undefined ? this.filename : options.filename ?? undefined;
    const params: Record<string, string> = {};
    if (type.startsWith('text/')) {
      const charset = typeof data === 'string' ? 'utf-8' : type === previousType ? this.charset : undefined;
      if (charset !== undefined) params.charset = charset;
    }
    if (filename !== undefined) params.name = filename;
    const container = type.startsWith('multipart/') || type.startsWith('message/');
    const encoding = container ? (ASCII_ONLY.test(bytes.toString('latin1')) ? '7bit' : '8bit') : chooseTransferEncoding(bytes, type.startsWith('text/'));
    const disposition = this.disposition ?? 'attachment';

    this.headers.set('Content-Type', libmime.buildHeaderValue({ value: type, params }));
    this.headers.set('Content-Transfer-Encoding', encoding);
    if (filename !== undefined) this.headers.set('Content-Disposition', libmime.buildHeaderValue({ value: disposition, params: { filename } }));
    else if (options.filename === null) this.headers.remove('Content-Disposition');
    for (const child of this.childList) child.parent = undefined;
    this.childList = [];
    this.kind = 'leaf';
    this.encodedMessage = false;
    this.newBody = { data: bytes, encoding };
    this.markDirty();
  }
}
