import { decodeUuencode } from '../mime/encodings/uuencode.js';

/**
 * Files written inline in a text body — uuencode, yEnc, BinHex. Outlook and news readers show them as
 * attachments, and no MIME-only filter sees them.
 */
export interface InlineFile {
  kind: 'uuencode' | 'yenc' | 'binhex';
  name: string;
  /** Decoded bytes (BinHex is not decoded: it is treated as unreadable). */
  data: Buffer | undefined;
  /** Where the block lies in the text, to cut it out. */
  start: number;
  end: number;
}

const UUENCODE = /^begin(?:-base64)? [0-7]{3,4} ([^\r\n]+)\r?\n[\s\S]*?^end[ \t]*$/gm;
const YENC = /^=ybegin [^\r\n]*?name=([^\r\n]+)\r?\n([\s\S]*?)^=yend[^\r\n]*$/gm;
const BINHEX = /\(This file must be converted with BinHex[^)]*\)[\s\S]*?(?::[ \t]*$|$(?![\s\S]))/gm;

/** yEnc: each byte is written as (byte + 42) mod 256, with "=" escaping critical ones (+64). */
function decodeYenc(body: string): Buffer {
  const out: number[] = [];
  for (const line of body.split(/\r?\n/)) {
    if (line.startsWith('=ypart')) continue;
    for (let i = 0; i < line.length; i++) {
      let c = line.charCodeAt(i);
      if (c === 0x3d && i + 1 < line.length) c = line.charCodeAt(++i) - 64;
      out.push((c - 42 + 256) & 0xff);
    }
  }
  return Buffer.from(out);
}

const MARKERS = [Buffer.from('begin '), Buffer.from('begin-base64 '), Buffer.from('=ybegin'), Buffer.from('BinHex')];

/** Whether a body may hold an inline file: a native search, so that ordinary text costs next to nothing. */
export function mayHoldInlineFiles(body: Buffer): boolean {
  return MARKERS.some((marker) => body.includes(marker));
}

/** Every inline file in a decoded text body (latin1 view: the encodings are 8-bit safe). */
export function findInlineFiles(text: string): InlineFile[] {
  if (!/^begin|=ybegin|BinHex/m.test(text)) return [];
  const files: InlineFile[] = [];
  for (const m of text.matchAll(UUENCODE)) {
    const block = Buffer.from(m[0], 'latin1');
    files.push({ kind: 'uuencode', name: (m[1] as string).trim(), data: decodeUuencode(block).data, start: m.index, end: m.index + m[0].length });
  }
  for (const m of text.matchAll(YENC)) {
    files.push({ kind: 'yenc', name: (m[1] as string).trim(), data: decodeYenc(m[2] as string), start: m.index, end: m.index + m[0].length });
  }
  for (const m of text.matchAll(BINHEX)) {
    files.push({ kind: 'binhex', name: 'binhex', data: undefined, start: m.index, end: m.index + m[0].length });
  }
  return files;
}

/** The text with the given blocks replaced by a short note. */
export function removeInlineFiles(text: string, files: readonly InlineFile[], note: (file: InlineFile) => string): string {
  let out = '';
  let last = 0;
  for (const file of [...files].sort((a, b) => a.start - b.start)) {
    if (file.start < last) continue;
    out += text.slice(last, file.start) + note(file);
    last = file.end;
  }
  return out + text.slice(last);
}
