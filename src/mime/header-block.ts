import type { ByteSource } from './byte-source.js';
import type { DecodeContext } from './decode-context.js';
import { Header, type LineEnding } from './header.js';

/** Where the pieces of one header block lie in the source. */
export interface HeaderBlock {
  fields: Header[];
  /** End of an mbox `From ` line before the first field (= the block start when there is none). */
  prefixEnd: number;
  /** Start of the fields past `maxHeaderBytes`, kept raw; undefined when the limit was not reached. */
  overflowStart: number | undefined;
  /** Start of the empty line that ends the block (= bodyStart when there is none). */
  separatorStart: number;
  bodyStart: number;
  hasSeparator: boolean;
  /** The line ending of the block's first line, when it has one. */
  eol: LineEnding | undefined;
}

export interface HeaderBlockInput {
  src: ByteSource;
  start: number;
  eolByte: number;
  maxHeaderBytes: number;
  /** The message root may start with an mbox `From ` line. */
  allowMboxPrefix: boolean;
  /** True when a line is a delimiter of an open multipart: the block (and the part) ends there. */
  isDelimiterLine: (lineStart: number) => boolean;
  /** The part the fields belong to: they decode through it. */
  ctx: DecodeContext;
}

const SP = 0x20;
const HT = 0x09;
const CR = 0x0d;
const COLON = 0x3a;
const MBOX_FROM = Buffer.from('From ');

/** End of the field name when the line starts with one (`name` WSP* `:`), else -1. */
function fieldNameEnd(src: ByteSource, lineStart: number, contentEnd: number): number {
  const flat = src.flat;
  let pos = lineStart;
  if (flat) {
    let c = 0;
    while (pos < contentEnd && (c = flat[pos] as number) !== COLON && c > SP && c <= 0x7e) pos++;
  } else {
    while (pos < contentEnd) {
      const c = src.byteAt(pos);
      if (c === COLON || c <= SP || c > 0x7e) break;
      pos++;
    }
  }
  if (pos === lineStart) return -1;
  let colon = pos;
  while (colon < contentEnd && (src.byteAt(colon) === SP || src.byteAt(colon) === HT)) colon++;
  return colon < contentEnd && src.byteAt(colon) === COLON ? pos : -1;
}

/**
 * Splits a header block into fields, line by line, up to the empty line (or a delimiter of an open
 * multipart, or the end). A line that is neither a field nor a continuation:
 * - as the very first line, means the part has no headers: it is body (`missing-header-separator`);
 * - after a field, is kept raw as an invalid entry and reading goes on (`invalid-header-line`), as
 *   MimeKit and mailsplit do. Python stops there instead, but a filter must not let a junk line hide
 *   the Content-Type below it from its view while a client still applies it.
 */
export function parseHeaderBlock(input: HeaderBlockInput): HeaderBlock {
  const { src, start, eolByte, ctx } = input;
  const len = src.length;
  const fields: Header[] = [];
  let prefixEnd = start;
  let overflowStart: number | undefined;
  let eol: LineEnding | undefined;
  let fieldStart = -1;
  let fieldValueStart = 0;
  let fieldName = '';
  const closeField = (end: number): void => {
    if (fieldStart >= 0) fields.push(Header.parsed(fieldName, src, fieldStart, fieldValueStart, end, ctx, eolByte === CR));
    fieldStart = -1;
  };
  const endWithoutSeparator = (pos: number, bodyFollows: boolean): HeaderBlock => {
    closeField(pos);
    if (pos > start || bodyFollows) ctx.report('missing-header-separator', pos);
    return { fields, prefixEnd, overflowStart, separatorStart: pos, bodyStart: pos, hasSeparator: false, eol };
  };
  let pos = start;
  while (pos < len) {
    const eolAt = src.indexOfByte(eolByte, pos);
    const next = eolAt < 0 ? len : eolAt + 1;
    const contentEnd = eolAt < 0 ? len : eolByte !== CR && eolAt > pos && src.byteAt(eolAt - 1) === CR ? eolAt - 1 : eolAt;
    if (eol === undefined && eolAt >= 0) eol = eolByte === CR ? '\r' : contentEnd < eolAt ? '\r\n' : '\n';
    if (contentEnd === pos) {
      closeField(pos);
      return { fields, prefixEnd, overflowStart, separatorStart: pos, bodyStart: next, hasSeparator: true, eol };
    }
    const first = src.byteAt(pos);
    if (overflowStart !== undefined) {
      // Past the limit nothing is interpreted; we only look for where the block ends.
      if (first === 0x2d && input.isDelimiterLine(pos)) return endWithoutSeparator(pos, false);
      pos = next;
      continue;
    }
    if (first === SP || first === HT) {
      if (fieldStart < 0 && fields.length === 0) return endWithoutSeparator(pos, true);
      pos = next;
      continue;
    }
    if (pos === start && input.allowMboxPrefix && src.equalsAt(pos, MBOX_FROM)) {
      prefixEnd = next;
      pos = next;
      continue;
    }
    if (first === 0x2d && input.isDelimiterLine(pos)) return endWithoutSeparator(pos, false);
    const nameEnd = fieldNameEnd(src, pos, contentEnd);
    if (nameEnd < 0) {
      if (fieldStart < 0 && fields.length === 0) return endWithoutSeparator(pos, true);
      // Kept as a nameless entry (its continuation lines with it) so the block still round-trips.
      closeField(pos);
      ctx.report('invalid-header-line', pos);
      fieldStart = pos;
      fieldName = '';
      fieldValueStart = pos;
      pos = next;
      continue;
    }
    closeField(pos);
    if (next - start > input.maxHeaderBytes) {
      overflowStart = pos;
      ctx.report('header-limit-exceeded', pos);
      pos = next;
      continue;
    }
    fieldStart = pos;
    fieldName = src.latin1(pos, nameEnd);
    fieldValueStart = src.indexOfByte(COLON, nameEnd, contentEnd) + 1;
    pos = next;
  }
  return endWithoutSeparator(len, false);
}
