import { BoundaryScanner, type Delimiter } from './boundary-scanner.js';
import { ByteSource } from './byte-source.js';
import { isMediaType, param } from './content-type.js';
import type { DefectLog } from './defect-log.js';
import { decodeTransferEncoding, parseTransferEncoding } from './encodings/transfer-encoding.js';
import type { Header } from './header.js';
import { parseHeaderBlock } from './header-block.js';
import type { ResolvedParseOptions } from './options.js';
import { MimePart, type PartLayout } from './part.js';

const LF = 0x0a;
const CR = 0x0d;

/** An entity whose extent is known, with the delimiter (if any) that ended it. */
interface Finished {
  part: MimePart;
  end: number;
  delimiter: Delimiter | undefined;
}

/** A container whose children are being parsed. */
interface Frame {
  part: MimePart;
  layout: PartLayout;
  /** The multipart's boundary level in the scanner (unused for messages). */
  level: number;
}

type Begun = { opened: Frame; childStart: number; childDelimiter: Delimiter | undefined } | { finished: Finished };

interface ContentFields {
  contentType: Header | undefined;
  transferEncoding: Header | undefined;
  disposition: Header | undefined;
  /** How many of each there were: more than one is a defect. */
  counts: [number, number, number];
}

/** The first Content-Type, Content-Transfer-Encoding and Content-Disposition fields, in one pass. */
function contentFields(fields: readonly Header[]): ContentFields {
  const found: ContentFields = { contentType: undefined, transferEncoding: undefined, disposition: undefined, counts: [0, 0, 0] };
  for (const h of fields) {
    // Cheap checks first: lower-casing every name would cost a string per field.
    if (h.name.length < 12 || (h.name.charCodeAt(0) | 0x20) !== 0x63) continue;
    const key = h.key;
    if (!key.startsWith('content-')) continue;
    if (key === 'content-type') {
      found.contentType ??= h;
      found.counts[0]++;
    } else if (key === 'content-transfer-encoding') {
      found.transferEncoding ??= h;
      found.counts[1]++;
    } else if (key === 'content-disposition') {
      found.disposition ??= h;
      found.counts[2]++;
    }
  }
  return found;
}

/**
 * Builds the tree in one pass over the source, without recursion: a stack of open containers, and a
 * boundary scanner that finds the next delimiter line of any open multipart. Every byte ends up in
 * exactly one piece of some part's layout, which is what makes the tree lossless.
 */
export class TreeParser {
  private readonly src: ByteSource;
  private readonly scanner: BoundaryScanner;
  private readonly eolByte: number;
  private readonly options: ResolvedParseOptions;
  private readonly log: DefectLog;
  /** Nesting of the message this parser works on (an encoded message/rfc822 is parsed separately). */
  private readonly baseDepth: number;
  private readonly counter: { parts: number };

  constructor(src: ByteSource, options: ResolvedParseOptions, log: DefectLog, baseDepth = 0, counter = { parts: 0 }) {
    this.src = src;
    // A message with no LF at all uses bare CR line endings (old Mac mail); otherwise LF ends a line.
    this.eolByte = src.indexOfByte(LF, 0) < 0 && src.indexOfByte(CR, 0) >= 0 ? CR : LF;
    this.scanner = new BoundaryScanner(src, this.eolByte);
    this.options = options;
    this.log = log;
    this.baseDepth = baseDepth;
    this.counter = counter;
  }

  parse(): MimePart {
    const frames: Frame[] = [];
    let pos = 0;
    let delimiter: Delimiter | undefined;
    for (;;) {
      const parent = frames[frames.length - 1];
      const begun = this.begin(pos, this.baseDepth + frames.length, parent?.part, delimiter);
      if ('opened' in begun) {
        frames.push(begun.opened);
        pos = begun.childStart;
        delimiter = begun.childDelimiter;
        continue;
      }
      let finished = begun.finished;
      // Close containers until one of them takes another child.
      for (;;) {
        const frame = frames[frames.length - 1];
        if (!frame) return finished.part;
        frame.part.attachChild(finished.part);
        const next = this.afterChild(frame, finished);
        if ('childStart' in next) {
          pos = next.childStart;
          delimiter = next.childDelimiter;
          break;
        }
        frames.pop();
        finished = next.finished;
      }
    }
  }

  /** Parses the header block at `pos` and decides what kind of entity it starts. */
  private begin(pos: number, depth: number, parent: MimePart | undefined, delimiter: Delimiter | undefined): Begun {
    const src = this.src;
    this.counter.parts++;
    const defaultType = parent?.contentType === 'multipart/digest' ? 'message/rfc822' : 'text/plain';
    const part = new MimePart({ kind: 'leaf', layout: undefined, log: this.log, defaultType });
    if (delimiter) part.delimiter = { start: delimiter.eolStart, end: delimiter.lineEnd };
    const block = parseHeaderBlock({
      src,
      start: pos,
      eolByte: this.eolByte,
      maxHeaderBytes: this.options.maxHeaderBytes,
      allowMboxPrefix: parent === undefined && this.baseDepth === 0,
      isDelimiterLine: (lineStart) => this.scanner.matchLine(lineStart) !== undefined,
      ctx: part,
    });
    part.headers.load(block.fields);
    part.eol = block.eol;
    const layout: PartLayout = {
      source: src,
      start: pos,
      end: src.length,
      prefixEnd: block.prefixEnd,
      overflowStart: block.overflowStart,
      separatorStart: block.separatorStart,
      bodyStart: block.bodyStart,
      preambleEnd: block.bodyStart,
      close: undefined,
      epilogueStart: src.length,
    };
    part.layout = layout;
    part.dirty = false;

    const fields = contentFields(block.fields);
    const [typeCount, encodingCount, dispositionCount] = fields.counts;
    if (typeCount > 1) part.report('duplicate-content-type', fields.contentType?.offset ?? pos);
    if (encodingCount > 1) part.report('duplicate-content-transfer-encoding', fields.transferEncoding?.offset ?? pos);
    if (dispositionCount > 1) part.report('duplicate-content-disposition', fields.disposition?.offset ?? pos);

    const mediaType = part.contentType;
    // Parameters are parsed here only when the structure needs them (a boundary) or the type is odd.
    const typeField = fields.contentType && (mediaType.startsWith('multipart/') || mediaType === part.defaultType) ? part.field('content-type') : undefined;
    if (typeField && !isMediaType(typeField.value)) part.report('invalid-content-type', fields.contentType?.offset ?? pos, typeField.value);
    const encodingName = fields.transferEncoding?.value;
    const encoding = encodingName === undefined ? '7bit' : parseTransferEncoding(encodingName);
    if (encoding === undefined) part.report('unknown-transfer-encoding', fields.transferEncoding?.offset ?? pos, encodingName);
    const atDepthLimit = depth >= this.options.maxDepth;

    if (mediaType.startsWith('multipart/')) {
      const written = typeField?.params.filter((p) => p.name === 'boundary').map((p) => p.value) ?? [];
      if (new Set(written).size > 1) part.report('ambiguous-boundary', fields.contentType?.offset ?? pos, 'several boundary parameters');
      else if (written.some((b) => /[ \t]$/.test(b))) part.report('ambiguous-boundary', fields.contentType?.offset ?? pos, 'boundary ends in whitespace');
      const boundary = param(typeField, 'boundary')?.replace(/[ \t]+$/, '');
      if (!boundary) part.report('multipart-without-boundary', fields.contentType?.offset ?? pos);
      else if (atDepthLimit) part.report('depth-limit-exceeded', pos);
      else {
        if (encoding !== '7bit' && encoding !== '8bit' && encoding !== 'binary') {
          part.report('invalid-transfer-encoding', fields.transferEncoding?.offset ?? pos, encodingName);
        }
        return this.openMultipart(part, layout, boundary);
      }
    } else if (mediaType === 'message/rfc822' || mediaType === 'message/global') {
      if (atDepthLimit) part.report('depth-limit-exceeded', pos);
      else if (encoding === 'base64' || encoding === 'quoted-printable') {
        return { finished: this.parseEncodedMessage(part, layout, encoding, depth) };
      } else {
        part.kind = 'message';
        return { opened: { part, layout, level: -1 }, childStart: layout.bodyStart, childDelimiter: undefined };
      }
    }
    // A leaf runs to the next delimiter of any open multipart.
    const next = this.scanner.next(layout.bodyStart, layout.bodyStart);
    layout.end = next ? next.eolStart : src.length;
    return { finished: { part, end: layout.end, delimiter: next } };
  }

  private openMultipart(part: MimePart, layout: PartLayout, boundary: string): Begun {
    part.kind = 'multipart';
    part.boundary = boundary;
    if (!this.scanner.push(boundary)) part.report('nested-duplicate-boundary', layout.start, boundary);
    const level = this.scanner.depth - 1;
    const first = this.scanner.next(layout.bodyStart, layout.bodyStart);
    if (first && first.level === level) {
      layout.preambleEnd = first.eolStart;
      if (!first.close) return { opened: { part, layout, level }, childStart: first.lineEnd, childDelimiter: first };
      // Only a close delimiter: a multipart with no parts (RFC 2046 requires one).
      part.report('missing-start-boundary', layout.bodyStart);
      return { finished: this.closeMultipart(part, layout, first) };
    }
    // No delimiter of ours before the enclosing multipart's (or the end): all of it is preamble.
    part.report('missing-start-boundary', layout.bodyStart);
    this.scanner.pop();
    layout.preambleEnd = layout.end = layout.epilogueStart = first ? first.eolStart : this.src.length;
    return { finished: { part, end: layout.end, delimiter: first } };
  }

  /** What follows a finished child: another child, or the end of its container. */
  private afterChild(frame: Frame, child: Finished): { childStart: number; childDelimiter: Delimiter } | { finished: Finished } {
    const { part, layout } = frame;
    if (part.kind === 'message') {
      layout.end = child.end;
      return { finished: { part, end: child.end, delimiter: child.delimiter } };
    }
    const d = child.delimiter;
    if (d && d.level === frame.level && !d.close) {
      if (this.counter.parts < this.options.maxParts) return { childStart: d.lineEnd, childDelimiter: d };
      // Past the part limit the rest of this multipart stays raw, in its epilogue.
      part.report('part-limit-exceeded', d.lineStart);
      this.scanner.pop();
      const end = this.scanner.next(d.lineEnd, d.eolStart);
      layout.epilogueStart = d.eolStart;
      layout.end = end ? end.eolStart : this.src.length;
      return { finished: { part, end: layout.end, delimiter: end } };
    }
    if (d && d.level === frame.level) return { finished: this.closeMultipart(part, layout, d) };
    // An enclosing multipart's delimiter, or the end of the input, before our close delimiter.
    part.report('missing-close-boundary', d ? d.lineStart : this.src.length);
    this.scanner.pop();
    layout.epilogueStart = layout.end = child.end;
    return { finished: { part, end: child.end, delimiter: d } };
  }

  private closeMultipart(part: MimePart, layout: PartLayout, close: Delimiter): Finished {
    layout.close = { start: close.eolStart, end: close.markerEnd };
    this.scanner.pop();
    // The epilogue runs to the next delimiter of an enclosing multipart.
    const next = this.scanner.next(close.markerEnd, close.markerEnd);
    layout.epilogueStart = close.markerEnd;
    layout.end = next ? next.eolStart : this.src.length;
    return { part, end: layout.end, delimiter: next };
  }

  /** message/rfc822 sent base64/QP-encoded: decode it and parse the result as a message of its own. */
  private parseEncodedMessage(part: MimePart, layout: PartLayout, encoding: 'base64' | 'quoted-printable', depth: number): Finished {
    part.report('encoded-message', layout.bodyStart, encoding);
    const next = this.scanner.next(layout.bodyStart, layout.bodyStart);
    layout.end = next ? next.eolStart : this.src.length;
    const decoded = decodeTransferEncoding(encoding, this.src.slice(layout.bodyStart, layout.end));
    const inner = new TreeParser(ByteSource.from(decoded.data), this.options, this.log, depth + 1, this.counter).parse();
    part.kind = 'message';
    part.encodedMessage = true;
    part.attachChild(inner);
    return { part, end: layout.end, delimiter: next };
  }
}
