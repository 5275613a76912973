import type { LineEnding } from '../header.js';

export interface Decoded {
  data: Buffer;
  /** The input had bytes the encoding does not allow (they were skipped or kept literally). */
  invalid: boolean;
}

const NOT_ALPHABET = /[^A-Za-z0-9+/=\r\n\t ]/;
const DATA_AFTER_PADDING = /=[\s=]*[A-Za-z0-9+/]/;

/**
 * Lenient base64, as mail clients decode it: characters outside the alphabet are skipped, and data after
 * an "=" is decoded too (a new quantum starts there, as libbase64 and MimeKit-style decoders do).
 * RFC 2045 6.8 would allow stopping at the first "=", but a filter must see every byte a client may
 * decode. Junk, data after padding or a truncated quantum is reported.
 */
export function decodeBase64(encoded: Buffer): Decoded {
  const text = encoded.toString('latin1');
  const junk = NOT_ALPHABET.test(text);
  const restarts = DATA_AFTER_PADDING.test(text);
  if (!junk && !restarts) {
    const significant = text.replace(/[\s=]+/g, '').length;
    return { data: Buffer.from(text, 'base64'), invalid: significant % 4 === 1 };
  }
  const segments = text.replace(/[^A-Za-z0-9+/=]+/g, '').split(/=+/).filter((s) => s.length > 0);
  return { data: Buffer.concat(segments.map((s) => Buffer.from(s, 'base64'))), invalid: true };
}

/** Base64 in 76-column lines separated by `eol` (RFC 2045 6.8); no line break after the last line. */
export function encodeBase64(data: Uint8Array, eol: LineEnding): Buffer {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += 76) lines.push(text.slice(i, i + 76));
  return Buffer.from(lines.join(eol), 'latin1');
}
