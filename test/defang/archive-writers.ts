import { crc32, deflateRawSync } from 'node:zlib';

/**
 * Small writers for the archives the defang tests need, well-formed by default and malformed on request.
 * Shared by the reader tests and the fixture builder.
 */

// ---------------------------------------------------------------------------------------------------------
// ZIP (APPNOTE.TXT)

const FLAG_DATA_DESCRIPTOR = 0x0008;
const FLAG_UTF8 = 0x0800;
const VERSION_NEEDED = 20;
const DATA_DESCRIPTOR_SIG = 0x08074b50;

export const METHOD_STORED = 0;
export const METHOD_DEFLATE = 8;

export interface ZipEntry {
  /** A string is written as UTF-8 (with the UTF-8 flag when not ASCII); a Buffer as raw bytes, no flag (CP437). */
  name: string | Buffer;
  data: Buffer | string;
  /** METHOD_STORED, METHOD_DEFLATE (the default), or any other number to write the data as is under it. */
  method?: number;
  /** Added to the general-purpose flags (bit 0: encrypted). */
  flags?: number;
  /** Extra field bytes, in both headers (see extraField). */
  extra?: Buffer;
  /** The name the central directory gives, when it should differ from the local header's. */
  centralName?: string;
  /** Leave the member out of the central directory: a local header nobody's directory lists. */
  localOnly?: boolean;
  /** The uncompressed size the headers claim, when it should lie. */
  declaredSize?: number;
  /** Sizes and CRC in a data descriptor after the data, zeros in the local header (streaming writers). */
  dataDescriptor?: boolean;
}

export interface ZipOptions {
  comment?: string;
  /** Added to every recorded offset: the archive as it reads once appended to that many bytes and fixed up (zip -A). */
  offsetBase?: number;
  /** Central directory entries written twice (overlapping members). */
  duplicateCentral?: boolean;
}

export function extraField(id: number, data: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16LE(id, 0);
  header.writeUInt16LE(data.length, 2);
  return Buffer.concat([header, data]);
}

function nameBytes(name: string | Buffer): { raw: Buffer; utf8: boolean } {
  if (Buffer.isBuffer(name)) return { raw: name, utf8: false };
  return { raw: Buffer.from(name, 'utf8'), utf8: /[^\x00-\x7f]/.test(name) };
}

export function writeZip(entries: ZipEntry[], options: ZipOptions = {}): Buffer {
  const base = options.offsetBase ?? 0;
  const chunks: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const plain = Buffer.isBuffer(entry.data) ? entry.data : Buffer.from(entry.data);
    const method = entry.method ?? METHOD_DEFLATE;
    const stored = method === METHOD_DEFLATE ? deflateRawSync(plain) : plain;
    const { raw, utf8 } = nameBytes(entry.name);
    const extra = entry.extra ?? Buffer.alloc(0);
    const flags = (entry.flags ?? 0) | (utf8 ? FLAG_UTF8 : 0) | (entry.dataDescriptor ? FLAG_DATA_DESCRIPTOR : 0);
    const crc = crc32(plain);
    const size = entry.declaredSize ?? plain.length;

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(VERSION_NEEDED, 4);
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    if (!entry.dataDescriptor) {
      local.writeUInt32LE(crc, 14);
      local.writeUInt32LE(stored.length, 18);
      local.writeUInt32LE(size, 22);
    }
    local.writeUInt16LE(raw.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const descriptor = Buffer.alloc(entry.dataDescriptor ? 16 : 0);
    if (entry.dataDescriptor) {
      descriptor.writeUInt32LE(DATA_DESCRIPTOR_SIG, 0);
      descriptor.writeUInt32LE(crc, 4);
      descriptor.writeUInt32LE(stored.length, 8);
      descriptor.writeUInt32LE(size, 12);
    }
    chunks.push(local, raw, extra, stored, descriptor);

    if (!entry.localOnly) {
      const centralRaw = entry.centralName === undefined ? raw : nameBytes(entry.centralName).raw;
      const header = Buffer.alloc(46);
      header.writeUInt32LE(0x02014b50, 0);
      header.writeUInt16LE(VERSION_NEEDED, 4);
      header.writeUInt16LE(VERSION_NEEDED, 6);
      header.writeUInt16LE(flags, 8);
      header.writeUInt16LE(method, 10);
      header.writeUInt32LE(crc, 16);
      header.writeUInt32LE(stored.length, 20);
      header.writeUInt32LE(size, 24);
      header.writeUInt16LE(centralRaw.length, 28);
      header.writeUInt16LE(extra.length, 30);
      header.writeUInt32LE(base + offset, 42);
      const record = Buffer.concat([header, centralRaw, extra]);
      central.push(record, ...(options.duplicateCentral ? [record] : []));
    }
    offset += local.length + raw.length + extra.length + stored.length + descriptor.length;
  }
  const directory = Buffer.concat(central);
  const comment = Buffer.from(options.comment ?? '', 'latin1');
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(central.length, 8);
  end.writeUInt16LE(central.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(base + offset, 16);
  end.writeUInt16LE(comment.length, 20);
  return Buffer.concat([...chunks, directory, end, comment]);
}

// ---------------------------------------------------------------------------------------------------------
// TNEF (MS-OXTNEF)

export const TNEF_SIGNATURE = 0x223e9f78;
export const LEVEL_MESSAGE = 1;
export const LEVEL_ATTACHMENT = 2;
export const ATT_TNEF_VERSION = 0x00089006;
export const ATT_ATTACH_REND_DATA = 0x00069002;
export const ATT_ATTACH_TITLE = 0x00018010;
export const ATT_ATTACH_DATA = 0x0006800f;
export const ATT_ATTACHMENT = 0x00069005;

export const PT_LONG = 0x0003;
export const PT_OBJECT = 0x000d;
export const PT_STRING8 = 0x001e;
export const PT_UNICODE = 0x001f;
export const PT_BINARY = 0x0102;
export const MV_FLAG = 0x1000;
export const PR_ATTACH_DATA_OBJ = 0x3701;
export const PR_ATTACH_FILENAME = 0x3704;
export const PR_ATTACH_LONG_FILENAME = 0x3707;
/** {00020307-0000-0000-C000-000000000046}, the interface id before an embedded message. */
export const IID_IMESSAGE = Buffer.from('0703020000000000c000000000000046', 'hex');

/** One attribute: level, id, length, data, and the checksum (sum of the data bytes mod 65536). */
export function tnefAttribute(level: number, id: number, data: Buffer, checksum?: number): Buffer {
  const header = Buffer.alloc(9);
  header.writeUInt8(level, 0);
  header.writeUInt32LE(id, 1);
  header.writeUInt32LE(data.length, 5);
  const trailer = Buffer.alloc(2);
  trailer.writeUInt16LE(checksum ?? data.reduce((sum, b) => (sum + b) % 0x10000, 0), 0);
  return Buffer.concat([header, data, trailer]);
}

/** A TNEF stream: signature, legacy key, a version attribute, then the given attributes. */
export function writeTnef(attributes: Buffer[]): Buffer {
  const header = Buffer.alloc(6);
  header.writeUInt32LE(TNEF_SIGNATURE, 0);
  header.writeUInt16LE(1, 4);
  const version = Buffer.alloc(4);
  version.writeUInt32LE(0x00010000, 0);
  return Buffer.concat([header, tnefAttribute(LEVEL_MESSAGE, ATT_TNEF_VERSION, version), ...attributes]);
}

export interface MapiProperty {
  type: number;
  id: number;
  /** Counted values (variable-size types, multi-valued ones), or one fixed-size value padded to 4 bytes. */
  value: Buffer[] | Buffer;
  /** A named property's numeric name (the id must then be 0x8000 or above). */
  namedId?: number;
}

function pad4(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((4 - (data.length % 4)) % 4)]);
}

function uint32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value, 0);
  return b;
}

/** The data of attAttachment (or attMAPIProps): a count, then each property tag, name and values. */
export function mapiProperties(props: MapiProperty[]): Buffer {
  const parts: Buffer[] = [uint32(props.length)];
  for (const prop of props) {
    const tag = Buffer.alloc(4);
    tag.writeUInt16LE(prop.type, 0);
    tag.writeUInt16LE(prop.id, 2);
    parts.push(tag);
    if (prop.namedId !== undefined) parts.push(Buffer.alloc(16), uint32(0), uint32(prop.namedId));
    if (Buffer.isBuffer(prop.value)) parts.push(pad4(prop.value));
    else parts.push(uint32(prop.value.length), ...prop.value.flatMap((v) => [uint32(v.length), pad4(v)]));
  }
  return Buffer.concat(parts);
}

export function unicodeValue(text: string): Buffer {
  return Buffer.from(`${text}\0`, 'utf16le');
}

export interface TnefAttachment {
  title?: string;
  data?: Buffer;
  props?: MapiProperty[];
}

/** The attributes of one attachment, in the order Outlook writes them. */
export function tnefAttachment(attachment: TnefAttachment): Buffer[] {
  const attributes = [tnefAttribute(LEVEL_ATTACHMENT, ATT_ATTACH_REND_DATA, Buffer.alloc(14))];
  if (attachment.title !== undefined) attributes.push(tnefAttribute(LEVEL_ATTACHMENT, ATT_ATTACH_TITLE, Buffer.from(`${attachment.title}\0`, 'latin1')));
  if (attachment.data) attributes.push(tnefAttribute(LEVEL_ATTACHMENT, ATT_ATTACH_DATA, attachment.data));
  if (attachment.props) attributes.push(tnefAttribute(LEVEL_ATTACHMENT, ATT_ATTACHMENT, mapiProperties(attachment.props)));
  return attributes;
}
