import type { LineEnding } from '../header.js';
import type { Decoded } from './base64.js';

/** Value of an ASCII hex digit, or -1. */
export function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/**
 * Quoted-printable decoding (RFC 2045 6.7): `=XX` and soft line breaks; an `=` that is neither is kept
 * literally, as mail clients do, and reported. Whitespace at the end of a line is dropped (rule 3:
 * transports add it). Line breaks are kept as they are in the source.
 */
export function decodeQuotedPrintable(encoded: Uint8Array): Decoded {
  const out = Buffer.allocUnsafe(encoded.length);
  let n = 0;
  let invalid = false;
  let protectedUpTo = 0;
  const len = encoded.length;
  for (let i = 0; i < len; i++) {
    const c = encoded[i] as number;
    if (c === 0x0a || c === 0x0d) {
      while (n > 0 && (out[n - 1] === 0x20 || out[n - 1] === 0x09) && n > protectedUpTo) n--;
      out[n++] = c;
      continue;
    }
    if (c !== 0x3d) {
      out[n++] = c;
      continue;
    }
    // Soft line break: "=" then optional transport whitespace then the line break (or the end).
    let j = i + 1;
    while (j < len && (encoded[j] === 0x20 || encoded[j] === 0x09)) j++;
    if (j >= len) {
      i = j;
      continue;
    }
    if (encoded[j] === 0x0d || encoded[j] === 0x0a) {
      i = encoded[j] === 0x0d && encoded[j + 1] === 0x0a ? j + 1 : j;
      protectedUpTo = n; // whitespace before a soft line break is content
      continue;
    }
    const hi = i + 2 < len ? hexValue(encoded[i + 1] as number) : -1;
    const lo = hi >= 0 ? hexValue(encoded[i + 2] as number) : -1;
    if (hi >= 0 && lo >= 0) {
      out[n++] = (hi << 4) | lo;
      protectedUpTo = n; // an encoded =20 at the end of a line is meant
      i += 2;
    } else {
      invalid = true;
      out[n++] = c;
    }
  }
  while (n > protectedUpTo && (out[n - 1] === 0x20 || out[n - 1] === 0x09)) n--;
  return { data: out.subarray(0, n), invalid };
}

const HEX = Buffer.from('0123456789ABCDEF');
const MAX_LINE = 76;

/**
 * Quoted-printable for text: lines of at most 76 columns, line breaks in the text (LF or CRLF) written
 * as `eol`. Besides what RFC 2045 requires, a leading "-" and "From " are escaped so that no encoded line
 * can be taken for a MIME delimiter or an mbox separator.
 */
export function encodeQuotedPrintable(data: Uint8Array, eol: LineEnding): Buffer {
  const eolBytes = Buffer.from(eol, 'latin1');
  // Worst case: every byte escaped (3x), plus a soft break ("=" + eol) every 25 input bytes.
  const out = Buffer.allocUnsafe(data.length * 3 + Math.ceil((data.length * 3) / (MAX_LINE - 1)) * (1 + eolBytes.length) + 16);
  let n = 0;
  let column = 0;
  const breakLine = (soft: boolean): void => {
    if (soft) out[n++] = 0x3d;
    for (const b of eolBytes) out[n++] = b;
    column = 0;
  };
  for (let i = 0; i < data.length; i++) {
    const c = data[i] as number;
    if (c === 0x0a || (c === 0x0d && data[i + 1] === 0x0a)) {
      if (c === 0x0d) i++;
      breakLine(false);
      continue;
    }
    const next = data[i + 1];
    const atLineEnd = next === undefined || next === 0x0a || next === 0x0d;
    const mustEscape =
      c === 0x3d ||
      c > 0x7e ||
      (c < 0x20 && c !== 0x09) ||
      ((c === 0x20 || c === 0x09) && atLineEnd) ||
      (column === 0 && (c === 0x2d || (c === 0x46 && data[i + 1] === 0x72 && data[i + 4] === 0x20)));
    const width = mustEscape ? 3 : 1;
    // Keep room for the "=" of a soft break within the 76 columns.
    if (column + width > MAX_LINE - 1) breakLine(true);
    if (mustEscape) {
      out[n++] = 0x3d;
      out[n++] = HEX[c >> 4] as number;
      out[n++] = HEX[c & 15] as number;
    } else out[n++] = c;
    column += width;
  }
  return out.subarray(0, n);
}
