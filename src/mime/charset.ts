import { isUtf8 } from 'node:buffer';
import iconv from 'iconv-lite';
import { decode as decodeWithLibmime } from 'libmime/lib/charset.js';

/**
 * Bytes to text with a declared charset and a fallback chain (MimeKit's: declared -> UTF-8 -> fallback).
 *
 * iconv-lite does the work. libmime's charset module is used only for the ISO-2022-JP family, which
 * iconv-lite lacks. We do not use libmime for the rest because it refuses UTF-7 (decoding it as UTF-8):
 * a filter must see what a UTF-7-capable client would render, or `+ADw-script+AD4-` slips through.
 */
export interface DecodedText {
  text: string;
  /** Set when the declared charset was unknown and the fallback chain was used. */
  unknownCharset?: string;
}

const ASCII_NAMES = new Set(['us-ascii', 'ascii', 'ansi_x3.4-1968', 'iso646-us', '7bit', 'us', 'default']);
const UTF8_NAMES = new Set(['utf-8', 'utf8', 'unicode-1-1-utf-8', 'x-unicode20utf8']);
const JAPANESE = /^(?:jis|iso-?2022-?jp|eucjp)/;
/**
 * Labels that mail clients and browsers (the WHATWG Encoding Standard) decode as a superset: mail
 * labelled ISO-8859-1 routinely carries Windows "smart quotes" in 0x80-0x9F.
 */
const SUPERSETS = new Map([
  ['iso-8859-1', 'windows-1252'],
  ['iso8859-1', 'windows-1252'],
  ['iso_8859-1', 'windows-1252'],
  ['latin1', 'windows-1252'],
  ['l1', 'windows-1252'],
  ['cp819', 'windows-1252'],
  ['iso-8859-9', 'windows-1254'],
  ['iso8859-9', 'windows-1254'],
  ['latin5', 'windows-1254'],
  ['iso-8859-11', 'windows-874'],
  ['tis-620', 'windows-874'],
  ['gb2312', 'gbk'],
  ['x-gbk', 'gbk'],
  ['ks_c_5601-1987', 'euc-kr'],
]);

export function normalizeCharsetName(declared: string): string {
  return declared.trim().replace(/^["']|["']$/g, '').toLowerCase();
}

export function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if ((bytes[i] as number) > 0x7f) return false;
  return true;
}

/** Undeclared (or ASCII-declared) bytes: ASCII, else UTF-8 when valid, else the fallback charset. */
function decodeUndeclared(bytes: Buffer, fallback: string): string {
  if (isAscii(bytes)) return bytes.toString('latin1');
  if (isUtf8(bytes)) return bytes.toString('utf8');
  return iconv.decode(bytes, iconv.encodingExists(fallback) ? fallback : 'windows-1252');
}

export function isKnownCharset(declared: string): boolean {
  const name = normalizeCharsetName(declared);
  return ASCII_NAMES.has(name) || UTF8_NAMES.has(name) || JAPANESE.test(name) || iconv.encodingExists(name);
}

export function decodeCharset(bytes: Buffer, declared: string | undefined, fallback: string): DecodedText {
  if (declared === undefined) return { text: decodeUndeclared(bytes, fallback) };
  const declaredName = normalizeCharsetName(declared);
  const name = SUPERSETS.get(declaredName) ?? declaredName;
  if (name === '' || ASCII_NAMES.has(name)) return { text: decodeUndeclared(bytes, fallback) };
  if (UTF8_NAMES.has(name)) return { text: bytes.toString('utf8') };
  if (JAPANESE.test(name)) return { text: decodeWithLibmime(bytes, name) };
  if (iconv.encodingExists(name)) return { text: iconv.decode(bytes, name) };
  return { text: decodeUndeclared(bytes, fallback), unknownCharset: declaredName };
}
