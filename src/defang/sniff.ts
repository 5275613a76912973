/**
 * What decoded bytes are, by their magic numbers and first text — whatever the name and declared type
 * say. Content beats labels: a renamed executable is still an executable (Microsoft 365's "true type",
 * amavis's file(1) types).
 */
export type SniffedType =
  | 'pe'
  | 'elf'
  | 'mach-o'
  | 'java-class'
  | 'lnk'
  | 'ole'
  | 'zip'
  | 'rar'
  | '7z'
  | 'cab'
  | 'gzip'
  | 'bzip2'
  | 'xz'
  | 'iso'
  | 'udf'
  | 'vhd'
  | 'vhdx'
  | 'dmg'
  | 'onenote'
  | 'tnef'
  | 'chm'
  | 'pdf'
  | 'rtf'
  | 'html'
  | 'svg'
  | 'mht'
  | 'hta'
  | 'script'
  | 'image'
  | 'unknown';

/** What a sniffed type means for a filter. */
export type SniffCategory = 'executable' | 'shortcut' | 'document' | 'archive' | 'disk-image' | 'html' | 'script' | 'benign' | 'unknown';

export const CATEGORY: Readonly<Record<SniffedType, SniffCategory>> = {
  pe: 'executable',
  elf: 'executable',
  'mach-o': 'executable',
  'java-class': 'executable',
  lnk: 'shortcut',
  ole: 'document',
  zip: 'archive',
  rar: 'archive',
  '7z': 'archive',
  cab: 'archive',
  gzip: 'archive',
  bzip2: 'archive',
  xz: 'archive',
  iso: 'disk-image',
  udf: 'disk-image',
  vhd: 'disk-image',
  vhdx: 'disk-image',
  dmg: 'disk-image',
  onenote: 'document',
  tnef: 'archive',
  chm: 'executable',
  pdf: 'benign',
  rtf: 'document',
  html: 'html',
  svg: 'html',
  mht: 'html',
  hta: 'executable',
  script: 'script',
  image: 'benign',
  unknown: 'unknown',
};

const MAGIC: ReadonlyArray<readonly [SniffedType, number, Buffer]> = [
  ['elf', 0, Buffer.from([0x7f, 0x45, 0x4c, 0x46])],
  ['mach-o', 0, Buffer.from([0xfe, 0xed, 0xfa, 0xce])],
  ['mach-o', 0, Buffer.from([0xfe, 0xed, 0xfa, 0xcf])],
  ['mach-o', 0, Buffer.from([0xce, 0xfa, 0xed, 0xfe])],
  ['mach-o', 0, Buffer.from([0xcf, 0xfa, 0xed, 0xfe])],
  // Universal (fat) Mach-O and Java class files share CAFEBABE: both are code.
  ['java-class', 0, Buffer.from([0xca, 0xfe, 0xba, 0xbe])],
  ['lnk', 0, Buffer.from('4c0000000114020000000000c000000000000046', 'hex')],
  ['ole', 0, Buffer.from('d0cf11e0a1b11ae1', 'hex')],
  ['zip', 0, Buffer.from('504b0304', 'hex')],
  ['zip', 0, Buffer.from('504b0506', 'hex')],
  ['zip', 0, Buffer.from('504b0708', 'hex')],
  ['rar', 0, Buffer.from('526172211a07', 'hex')],
  ['7z', 0, Buffer.from('377abcaf271c', 'hex')],
  ['cab', 0, Buffer.from('4d534346', 'hex')],
  ['gzip', 0, Buffer.from([0x1f, 0x8b])],
  ['bzip2', 0, Buffer.from('BZh')],
  ['xz', 0, Buffer.from('fd377a585a00', 'hex')],
  ['vhdx', 0, Buffer.from('vhdxfile')],
  ['vhd', 0, Buffer.from('conectix')],
  ['onenote', 0, Buffer.from('e4525c7b8cd8a74daeb15378d02996d3', 'hex')],
  ['tnef', 0, Buffer.from([0x78, 0x9f, 0x3e, 0x22])],
  ['chm', 0, Buffer.from('ITSF')],
  ['rtf', 0, Buffer.from('{\\rtf')],
  ['image', 0, Buffer.from('89504e470d0a1a0a', 'hex')],
  ['image', 0, Buffer.from([0xff, 0xd8, 0xff])],
  ['image', 0, Buffer.from('GIF8')],
];

// ISO 9660 and UDF volume descriptors sit in the 16th sector onwards.
const VOLUME_DESCRIPTOR_OFFSETS = [0x8001, 0x8801, 0x9001];

function at(bytes: Buffer, offset: number, magic: Buffer): boolean {
  return bytes.length >= offset + magic.length && bytes.compare(magic, 0, magic.length, offset, offset + magic.length) === 0;
}

function isPortableExecutable(bytes: Buffer): boolean {
  // "MZ" alone is already a DOS executable; with a valid e_lfanew it points at "PE\0\0".
  return bytes.length >= 2 && bytes[0] === 0x4d && bytes[1] === 0x5a;
}

/** The start of the content as text, without a BOM and leading whitespace, lower-case. */
function textHead(bytes: Buffer): string {
  let head = bytes.subarray(0, 1024).toString('latin1');
  if (head.startsWith('\xef\xbb\xbf')) head = head.slice(3);
  return head.replace(/\x00/g, '').trimStart().toLowerCase();
}

const HTML_START = /^(?:<!doctype html|<html|<head|<body|<script|<iframe|<meta|<title|<a\s|<div|<table|<form|<p>|<!--)/;
const SCRIPT_START = [
  /^#!/, // shell, perl, python... with an interpreter line
  /^@echo\s+off/, // Windows batch
  /^(?:set\s+\w+\s*=\s*createobject|dim\s+\w+|on\s+error\s+resume\s+next)/, // VBScript
  /^(?:var\s+\w+\s*=\s*new\s+activexobject|new\s+activexobject)/, // JScript
];
// Anywhere near the start: calls that only scripts make.
const SCRIPT_MARKERS = /wscript\.shell|createobject\(["']wscript|new-object\s+(?:system\.)?net\.webclient|invoke-expression|\biex\s*\(|-encodedcommand|frombase64string|powershell(?:\.exe)?\s+-/;

/** Whether the first byte could start any signature in MAGIC (most text cannot): skips the table. */
const MAGIC_FIRST_BYTES = new Set(MAGIC.map(([, , magic]) => magic[0] as number));

export function sniff(bytes: Buffer): SniffedType {
  if (isPortableExecutable(bytes)) return 'pe';
  if (bytes.length > 0 && MAGIC_FIRST_BYTES.has(bytes[0] as number)) {
    for (const [type, offset, magic] of MAGIC) if (at(bytes, offset, magic)) return type;
  }
  for (const offset of VOLUME_DESCRIPTOR_OFFSETS) {
    if (at(bytes, offset, Buffer.from('CD001'))) return 'iso';
    if (at(bytes, offset, Buffer.from('BEA01')) || at(bytes, offset, Buffer.from('NSR0'))) return 'udf';
  }
  // VHD and DMG keep their signature in a footer 512 bytes from the end.
  if (bytes.length >= 512 && at(bytes, bytes.length - 512, Buffer.from('conectix'))) return 'vhd';
  if (bytes.length >= 512 && at(bytes, bytes.length - 512, Buffer.from('koly'))) return 'dmg';
  const head = textHead(bytes);
  if (head.startsWith('%pdf-') || bytes.subarray(0, 1024).includes('%PDF-')) return 'pdf';
  if (head.includes('<hta:application')) return 'hta';
  if (/^(?:<\?xml[^>]*>\s*)?(?:<!doctype svg[^>]*>\s*)?<svg[\s>]/.test(head)) return 'svg';
  if (/^mime-version:/.test(head) && /content-type:\s*multipart\/related/.test(head)) return 'mht';
  if (HTML_START.test(head)) return 'html';
  if (SCRIPT_START.some((re) => re.test(head)) || SCRIPT_MARKERS.test(head)) return 'script';
  return 'unknown';
}

/** The 68-byte EICAR anti-virus test file: anti-virus software treats it as malware, so do we. */
const EICAR = Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*');

export function isEicar(bytes: Buffer): boolean {
  // The standard allows the string to be followed by whitespace, up to 128 bytes in all.
  return bytes.length <= 128 && bytes.subarray(0, EICAR.length).equals(EICAR) && /^\s*$/.test(bytes.subarray(EICAR.length).toString('latin1'));
}

/** OLE storage holding VBA macros: the stream names are UTF-16LE in the directory sectors. */
const OLE_MACRO_MARKERS = [Buffer.from('_VBA_PROJECT', 'utf16le'), Buffer.from('Macros', 'utf16le'), Buffer.from('VBA', 'utf16le')];

export function oleHasMacros(bytes: Buffer): boolean {
  return OLE_MACRO_MARKERS.some((marker) => bytes.includes(marker));
}
