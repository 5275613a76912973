import { decodeCharset } from './charset.js';
import { hexValue } from './encodings/quoted-printable.js';

/**
 * RFC 2047 encoded-word decoding.
 *
 * Written here rather than taken from libmime.decodeWords because a filter needs to know what it
 * guessed: libmime silently falls back on unknown charsets and decodes UTF-7 words as UTF-8. We follow
 * the same real-world rules: whitespace between adjacent encoded-words is dropped, and adjacent words
 * in one charset are joined as bytes before decoding, so a multibyte character split across two words
 * (RFC 2047 forbids it, senders do it) comes out whole.
 */
export interface EncodedWordIssues {
  unknownCharsets: string[];
  invalidWords: number;
  /** Parameters given twice or continued with gaps (filled by the parameter parser). */
  ambiguousParameters?: string[];
}

const WORD = /=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=/g;
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;
/** What is left looking like the start of a word: an unknown encoding letter, or never terminated. */
const MALFORMED_WORD = /=\?[^?\s]+\?(?:[^bBqQ]|[bBqQ]\?[^?\s]*(?:$|\s))/;

function decodeQ(text: string): Buffer {
  const out = Buffer.allocUnsafe(text.length);
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5f) out[n++] = 0x20;
    else if (c === 0x3d && i + 2 < text.length) {
      const hi = hexValue(text.charCodeAt(i + 1));
      const lo = hexValue(text.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        out[n++] = (hi << 4) | lo;
        i += 2;
      } else out[n++] = c;
    } else out[n++] = c & 0xff;
  }
  return out.subarray(0, n);
}

interface Word {
  charset: string;
  bytes: Buffer;
}

/** Decodes every encoded-word in `input`; text outside words is kept as is. */
export function decodeEncodedWords(input: string, fallbackCharset: string, issues?: EncodedWordIssues): string {
  if (!input.includes('=?')) return input;
  let out = '';
  let pending: Word | undefined;
  let last = 0;
  const flush = (): void => {
    if (!pending) return;
    const decoded = decodeCharset(pending.bytes, pending.charset, fallbackCharset);
    if (decoded.unknownCharset !== undefined) issues?.unknownCharsets.push(decoded.unknownCharset);
    out += decoded.text;
    pending = undefined;
  };
  for (const m of input.matchAll(WORD)) {
    const between = input.slice(last, m.index);
    last = m.index + m[0].length;
    // RFC 2231 section 5 allows a language tag after the charset: utf-8*en.
    const charset = (m[1] as string).split('*')[0] as string;
    const encoding = (m[2] as string).toLowerCase();
    const text = m[3] as string;
    if (encoding === 'b' && !BASE64_TEXT.test(text) && issues) issues.invalidWords++;
    const bytes = encoding === 'b' ? Buffer.from(text, 'base64') : decodeQ(text);
    const adjacent = pending !== undefined && /^[ \t\r\n]*$/.test(between);
    if (!adjacent) {
      flush();
      out += between;
    }
    if (pending && pending.charset.toLowerCase() === charset.toLowerCase()) {
      pending.bytes = Buffer.concat([pending.bytes, bytes]);
    } else {
      flush();
      pending = { charset, bytes };
    }
  }
  flush();
  const rest = input.slice(last);
  if (issues && MALFORMED_WORD.test(out + rest)) issues.invalidWords++;
  return out + rest;
}
