import type { LineEnding } from '../header.js';
import { decodeBase64, encodeBase64, type Decoded } from './base64.js';
import { decodeQuotedPrintable, encodeQuotedPrintable } from './quoted-printable.js';
import { decodeUuencode } from './uuencode.js';

export type TransferEncoding = '7bit' | '8bit' | 'binary' | 'base64' | 'quoted-printable' | 'x-uuencode';

const KNOWN: Record<string, TransferEncoding> = {
  '7bit': '7bit',
  '8bit': '8bit',
  binary: 'binary',
  base64: 'base64',
  'quoted-printable': 'quoted-printable',
  'x-uuencode': 'x-uuencode',
  'x-uue': 'x-uuencode',
  uuencode: 'x-uuencode',
};

/** The encoding named by a Content-Transfer-Encoding value, or undefined when we do not know it. */
export function parseTransferEncoding(value: string): TransferEncoding | undefined {
  return KNOWN[value.trim().toLowerCase().replace(/^["']|["']$/g, '')];
}

export function decodeTransferEncoding(encoding: TransferEncoding, body: Buffer): Decoded {
  switch (encoding) {
    case 'base64':
      return decodeBase64(body);
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    case 'x-uuencode':
      return decodeUuencode(body);
    default:
      return { data: body, invalid: false };
  }
}

export type ChosenEncoding = '7bit' | 'quoted-printable' | 'base64';

/**
 * The transfer encoding for new content: 7bit text when it already is, quoted-printable for mostly
 * ASCII text, base64 for everything else. Text whose lines could pass for a delimiter ("--...") or an
 * mbox separator is never sent as 7bit.
 */
export function chooseTransferEncoding(data: Uint8Array, isText: boolean): ChosenEncoding {
  if (!isText) return 'base64';
  let unsafe = 0;
  let lineLength = 0;
  let longLine = false;
  let riskyLineStart = false;
  for (let i = 0; i < data.length; i++) {
    const c = data[i] as number;
    if (lineLength === 0 && (c === 0x2d || c === 0x46)) riskyLineStart = true;
    if (c === 0x0a) {
      lineLength = 0;
      continue;
    }
    if (c === 0x0d) {
      if (data[i + 1] !== 0x0a) unsafe++;
      continue;
    }
    if (c > 0x7e || (c < 0x20 && c !== 0x09)) unsafe++;
    if (++lineLength > 998) longLine = true;
  }
  if (unsafe === 0 && !longLine && !riskyLineStart) return '7bit';
  return unsafe <= data.length / 6 ? 'quoted-printable' : 'base64';
}

/** Encodes new content; 7bit text gets its line breaks written as `eol`. */
export function encodeContent(data: Uint8Array, encoding: ChosenEncoding, eol: LineEnding): Buffer {
  if (encoding === 'base64') return encodeBase64(data, eol);
  if (encoding === 'quoted-printable') return encodeQuotedPrintable(data, eol);
  return Buffer.from(Buffer.from(data).toString('latin1').replace(/\r\n|\n/g, eol), 'latin1');
}
