import type { LineEnding } from '../header.js';

export interface Decoded {
  data: Buffer;
  /** The input had bytes the encoding does not allow (they were skipped or kept literally). */
  invalid: boolean;
}

const ALPHABET = /[^A-Za-z0-9+/=\r\n\t ]/;

/**
 * Lenient base64, as mail clients decode it: characters outside the alphabet are skipped and decoding
 * stops at padding (Node's decoder does exactly this). Junk or a truncated quantum is reported.
 */
export function decodeBase64(encoded: Buffer): Decoded {
  const text = encoded.toString('latin1');
  let invalid = ALPHABET.test(text);
  if (!invalid) {
    const significant = text.replace(/[\s=]+/g, '').length;
    invalid = significant % 4 === 1 || /=[^=\s]/.test(text.replace(/\s+/g, ''));
  }
  return { data: Buffer.from(text, 'base64'), invalid };
}

/** Base64 in 76-column lines separated by `eol` (RFC 2045 6.8); no line break after the last line. */
export function encodeBase64(data: Uint8Array, eol: LineEnding): Buffer {
  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += 76) lines.push(text.slice(i, i + 76));
  return Buffer.from(lines.join(eol), 'latin1');
}
