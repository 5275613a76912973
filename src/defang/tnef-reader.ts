import { createHash } from 'node:crypto';
import type { ArchiveLimits, EmbeddedFile } from './types.js';

/**
 * Lists the attachments of a TNEF stream (winmail.dat, application/ms-tnef), which hides files from any
 * filter that does not look inside (MS-OXTNEF). An attachment may be named by several attributes and
 * properties, and a client shows whichever it prefers, so each distinct name is returned as a file of
 * its own (sharing the data). Embedded messages and OLE objects are returned as data (a nested TNEF
 * stream or a compound file) for the caller to recurse into. Never throws; the work is linear.
 */

export type TnefProblem = 'not-tnef' | 'corrupt' | 'truncated' | 'file-limit' | 'size-limit';

export interface TnefListing {
  files: EmbeddedFile[];
  problems: TnefProblem[];
}

const SIGNATURE = 0x223e9f78;
/** Signature and legacy key. */
const STREAM_HEADER_SIZE = 6;
/** Level (1 byte), id (4) and length (4) before the data; a 16-bit checksum after it. */
const ATTRIBUTE_HEADER_SIZE = 9;
const CHECKSUM_SIZE = 2;
const CHECKSUM_MODULUS = 0x10000;
const LEVEL_MESSAGE = 1;
const LEVEL_ATTACHMENT = 2;

// Attribute ids, without the type in the high word: readers disagree on whether it must match, and every
// id names one attribute whatever its type.
const ID_MASK = 0xffff;
/** attAttachRendData: MS-OXTNEF has it open each attachment. */
const ATT_ATTACH_REND_DATA = 0x9002;
const ATT_ATTACH_TITLE = 0x8010;
const ATT_ATTACH_TRANSPORT_FILENAME = 0x9001;
const ATT_ATTACH_DATA = 0x800f;
/** attAttachment: the attachment's MAPI properties. */
const ATT_ATTACHMENT = 0x9005;
const ATTACHMENT_ATTRIBUTES = new Set([ATT_ATTACH_REND_DATA, ATT_ATTACH_TITLE, ATT_ATTACH_TRANSPORT_FILENAME, ATT_ATTACH_DATA, ATT_ATTACHMENT]);

// MAPI property ids that name an attachment (every one a client may show or save under) and hold its data.
const NAME_PROPERTIES = new Set([
  0x3001, // PR_DISPLAY_NAME
  0x3703, // PR_ATTACH_EXTENSION
  0x3704, // PR_ATTACH_FILENAME (8.3)
  0x3707, // PR_ATTACH_LONG_FILENAME
  0x3708, // PR_ATTACH_PATHNAME
  0x370d, // PR_ATTACH_LONG_PATHNAME
]);
const PR_ATTACH_DATA_OBJ = 0x3701;
/** Property ids from here on are named properties, preceded by their name. */
const FIRST_NAMED_ID = 0x8000;
const NAME_GUID_SIZE = 16;
const NAME_KIND_ID = 0;
const NAME_KIND_STRING = 1;

// MAPI property types.
const PT_OBJECT = 0x000d;
const PT_STRING8 = 0x001e;
const PT_UNICODE = 0x001f;
const PT_BINARY = 0x0102;
const MV_FLAG = 0x1000;
const VARIABLE_TYPES = new Set([PT_OBJECT, PT_STRING8, PT_UNICODE, PT_BINARY]);
/** Sizes in the stream of fixed-size types: TNEF pads every value to 4 bytes (16-bit ones included). */
const FIXED_SIZES = new Map([
  [0x0002, 4], // PT_I2
  [0x0003, 4], // PT_LONG
  [0x0004, 4], // PT_R4
  [0x000a, 4], // PT_ERROR
  [0x000b, 4], // PT_BOOLEAN
  [0x0005, 8], // PT_DOUBLE
  [0x0006, 8], // PT_CURRENCY
  [0x0007, 8], // PT_APPTIME
  [0x0014, 8], // PT_I8
  [0x0040, 8], // PT_SYSTIME
  [0x0048, 16], // PT_CLSID
]);
/** A PT_OBJECT value starts with the interface id of the object (IID_IMessage, IID_IStorage...). */
const IID_SIZE = 16;
const VALUE_ALIGNMENT = 4;

const ansi = new TextDecoder('windows-1252');

interface Attachment {
  names: string[];
  data: Buffer[];
}

export function readTnef(bytes: Buffer, limits: ArchiveLimits): TnefListing {
  if (bytes.length < STREAM_HEADER_SIZE || bytes.readUInt32LE(0) !== SIGNATURE) return { files: [], problems: ['not-tnef'] };
  const problems = new Set<TnefProblem>();
  const attachments: Attachment[] = [];
  let current: Attachment | undefined;
  let at = STREAM_HEADER_SIZE;
  while (at < bytes.length) {
    if (at + ATTRIBUTE_HEADER_SIZE > bytes.length) {
      problems.add('truncated');
      break;
    }
    const level = bytes[at];
    const id = bytes.readUInt32LE(at + 1) & ID_MASK;
    const dataStart = at + ATTRIBUTE_HEADER_SIZE;
    const dataEnd = dataStart + bytes.readUInt32LE(at + 5);
    if (dataEnd + CHECKSUM_SIZE > bytes.length) {
      problems.add('truncated');
      break;
    }
    const data = bytes.subarray(dataStart, dataEnd);
    if (bytes.readUInt16LE(dataEnd) !== checksum(data) || (level !== LEVEL_MESSAGE && level !== LEVEL_ATTACHMENT)) problems.add('corrupt');
    at = dataEnd + CHECKSUM_SIZE;

    if (!ATTACHMENT_ATTRIBUTES.has(id)) continue;
    // An attachment attribute before any attAttachRendData still belongs to some attachment.
    if (id === ATT_ATTACH_REND_DATA || !current) {
      if (attachments.length >= limits.maxMembers) {
        problems.add('file-limit');
        break;
      }
      current = { names: [], data: [] };
      attachments.push(current);
    }
    if (id === ATT_ATTACH_TITLE || id === ATT_ATTACH_TRANSPORT_FILENAME) current.names.push(decodeAnsi(data));
    else if (id === ATT_ATTACH_DATA) current.data.push(data);
    else if (id === ATT_ATTACHMENT && !readAttachmentProperties(data, current)) problems.add('corrupt');
  }
  const files = toFiles(attachments, limits, problems);
  return { files, problems: [...problems] };
}

function checksum(data: Buffer): number {
  let sum = 0;
  for (const byte of data) sum = (sum + byte) % CHECKSUM_MODULUS;
  return sum;
}

/** Strings are NUL-terminated; a NUL inside a name is kept for the name checks to see. */
function decodeAnsi(data: Buffer): string {
  return ansi.decode(data).replace(/\0+$/, '');
}

/** One file per distinct name, then one per further distinct data, each budgeted once. */
function toFiles(attachments: Attachment[], limits: ArchiveLimits, problems: Set<TnefProblem>): EmbeddedFile[] {
  const files: EmbeddedFile[] = [];
  let budget = limits.maxTotalBytes;
  for (const attachment of attachments) {
    const names = [...new Set(attachment.names)];
    // The same bytes may come from attAttachData and from PR_ATTACH_DATA_OBJ.
    const digests = new Set<string>();
    const data: Buffer[] = [];
    for (const d of attachment.data) {
      const digest = createHash('sha256').update(d).digest('hex');
      if (digests.has(digest)) continue;
      digests.add(digest);
      data.push(d);
    }
    const within = data.map((d) => {
      if (d.length > budget) {
        problems.add('size-limit');
        return undefined;
      }
      budget -= d.length;
      return d;
    });
    const entries: EmbeddedFile[] = [
      ...names.map((name) => ({ name, data: within[0], encrypted: false })),
      ...within.slice(names.length > 0 ? 1 : 0).map((d) => ({ name: names[0] ?? '', data: d, encrypted: false })),
    ];
    for (const entry of entries) {
      if (files.length >= limits.maxMembers) {
        problems.add('file-limit');
        return files;
      }
      files.push(entry);
    }
  }
  return files;
}

/**
 * Collects names and data from an attAttachment property list. Returns false when the list is malformed
 * (what was found before is kept). Each step consumes at least four bytes, so the loop is bounded.
 */
function readAttachmentProperties(props: Buffer, attachment: Attachment): boolean {
  if (props.length < 4) return false;
  const count = props.readUInt32LE(0);
  let at = 4;
  const fits = (size: number): boolean => at + size <= props.length;
  for (let i = 0; i < count; i++) {
    if (!fits(4)) return false;
    const type = props.readUInt16LE(at);
    const id = props.readUInt16LE(at + 2);
    at += 4;
    if (id >= FIRST_NAMED_ID) {
      if (!fits(NAME_GUID_SIZE + 8)) return false;
      const kind = props.readUInt32LE(at + NAME_GUID_SIZE);
      const size = props.readUInt32LE(at + NAME_GUID_SIZE + 4);
      if (kind === NAME_KIND_ID) at += NAME_GUID_SIZE + 8;
      else if (kind === NAME_KIND_STRING) at += NAME_GUID_SIZE + 8 + padded(size);
      else return false;
    }
    const base = type & ~MV_FLAG;
    const variable = VARIABLE_TYPES.has(base);
    const fixedSize = FIXED_SIZES.get(base);
    if (!variable && fixedSize === undefined) return false;
    let values = 1;
    if (variable || type & MV_FLAG) {
      if (!fits(4)) return false;
      values = props.readUInt32LE(at);
      at += 4;
    }
    for (let v = 0; v < values; v++) {
      const size = variable ? (fits(4) ? props.readUInt32LE(at) : undefined) : fixedSize;
      if (size === undefined) return false;
      if (variable) at += 4;
      if (!fits(size)) return false;
      const value = props.subarray(at, at + size);
      // Padding may be missing after the last value: the next read then fails, not this one.
      at += variable ? padded(size) : size;
      noteProperty(id, base, value, attachment);
    }
  }
  return true;
}

function noteProperty(id: number, type: number, value: Buffer, attachment: Attachment): void {
  if (NAME_PROPERTIES.has(id)) {
    if (type === PT_STRING8) attachment.names.push(decodeAnsi(value));
    else if (type === PT_UNICODE) attachment.names.push(value.toString('utf16le').replace(/\0+$/, ''));
  } else if (id === PR_ATTACH_DATA_OBJ) {
    if (type === PT_BINARY) attachment.data.push(value);
    else if (type === PT_OBJECT && value.length >= IID_SIZE) attachment.data.push(value.subarray(IID_SIZE));
  }
}

function padded(size: number): number {
  return Math.ceil(size / VALUE_ALIGNMENT) * VALUE_ALIGNMENT;
}
