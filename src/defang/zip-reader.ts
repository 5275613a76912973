import { constants as bufferConstants } from 'node:buffer';
import { inflateRawSync } from 'node:zlib';
import type { ArchiveLimits, EmbeddedFile } from './types.js';

/**
 * A defensive ZIP lister for a mail filter. Readers disagree on what a zip holds: yauzl and fflate read the
 * last end record at its declared offsets, Python adjusts the offsets for prepended bytes, streaming readers
 * walk the local headers from the start (the "zip concatenation" attack plays on this). So every view is
 * read and the union reported, with whatever made the views differ as a problem. Never throws; the work is
 * linear in the input plus the extraction budget.
 */

export type ZipProblem =
  | 'not-a-zip'
  | 'corrupt'
  /** More than one outermost end record: concatenated zips, or a fake end record in a comment. */
  | 'multiple-archives'
  | 'prepended-data'
  | 'trailing-data'
  /** A member seen through the central directory but not through the local headers, or the reverse, or the two disagree. */
  | 'central-local-mismatch'
  /** Members sharing bytes (overlapping-file zip bombs, two directory entries for one header). */
  | 'overlapping-members'
  | 'encrypted'
  | 'member-limit'
  | 'size-limit'
  | 'ratio-limit'
  | 'unsupported-method';

export interface ZipMember extends EmbeddedFile {
  compressedSize: number;
  uncompressedSize: number;
  /** 0 stored, 8 deflate; anything else is listed but not extracted. */
  method: number;
  /** Of the member's local header in the input. */
  offset: number;
  /** Which headers carry this name. */
  seenIn: 'central' | 'local' | 'both';
}

export interface ZipListing {
  /** One per distinct name of a member: a member whose headers disagree on its name is listed under each. */
  members: ZipMember[];
  problems: ZipProblem[];
}

const LOCAL_HEADER_SIG = 0x04034b50;
const CENTRAL_HEADER_SIG = 0x02014b50;
const ZIP64_END_SIG = 0x06064b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const LOCAL_HEADER_MARK = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
/** The end of central directory record's signature, searched for as bytes. */
const END_MARK = Buffer.from([0x50, 0x4b, 0x05, 0x06]);

const LOCAL_HEADER_SIZE = 30;
const CENTRAL_HEADER_SIZE = 46;
const END_SIZE = 22;
const ZIP64_END_SIZE = 56;
const ZIP64_LOCATOR_SIZE = 20;
const EXTRA_HEADER_SIZE = 4;
/** Version byte and CRC-32 of the raw name, before the UTF-8 name. */
const UNICODE_PATH_PREFIX = 5;
const UNICODE_PATH_VERSION = 1;

const FLAG_ENCRYPTED = 0x0001;
const FLAG_DATA_DESCRIPTOR = 0x0008;
const FLAG_STRONG_ENCRYPTION = 0x0040;
const FLAG_UTF8 = 0x0800;
/** Central directory encryption: the local header's values are masked. */
const FLAG_MASKED_HEADER = 0x2000;
const ENCRYPTION_FLAGS = FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION | FLAG_MASKED_HEADER;

const METHOD_STORED = 0;
const METHOD_DEFLATE = 8;
const METHOD_AES = 99;

const EXTRA_ZIP64 = 0x0001;
const EXTRA_UNICODE_PATH = 0x7075;
const EXTRA_AES = 0x9901;

/** A 16- or 32-bit field with this value defers to the zip64 records. */
const SATURATED_16 = 0xffff;
const SATURATED_32 = 0xffffffff;

/** Directory entries read across all candidate directories, per allowed member: nested archives and
 *  alternative offsets are read before we know which ones are outermost. */
const READ_ALLOWANCE = 4;
/** Outermost archives beyond the first are already an ambiguity; past this many, reading more buys nothing. */
const MAX_ARCHIVES = 8;

/** The upper half of code page 437 (the lower half is ASCII), for names without the UTF-8 flag. */
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';
const ASCII_END = 0x80;

/** What a local or a central header says about a member. */
interface Header {
  name: string;
  /** The Info-ZIP Unicode Path extra field, which 7-Zip and unzip show instead of the raw name. */
  unicodeName: string | undefined;
  flags: number;
  method: number;
  compressedSize: number;
  uncompressedSize: number;
  encrypted: boolean;
  /** Of the member's local header. */
  offset: number;
}

interface LocalHeader extends Header {
  dataStart: number;
}

/** The directory found through one end record (with every candidate position of its central directory). */
interface Directory {
  /** Position of the end record. */
  end: number;
  /** First byte of the directory, or the end record when none was read. */
  start: number;
  /** Just past the end record's comment (beyond the input when the comment is cut short). */
  stop: number;
  headers: Header[];
  /** No header cut short, and as many headers as the end record says. */
  intact: boolean;
}

/** Where an end record (32-bit or zip64) says the central directory is. */
interface Declared {
  count: number;
  size: number;
  offset: number;
  /** Where the directory really ends: at the zip64 end record, else at the end record. */
  endsAt: number;
}

export function readZip(bytes: Buffer, limits: ArchiveLimits): ZipListing {
  const problems = new Set<ZipProblem>();
  const readBudget = { entries: READ_ALLOWANCE * Math.max(1, limits.maxMembers) };
  const directories = findDirectories(bytes, readBudget, problems);
  const centralSizes = new Map<number, number>();
  for (const dir of directories) for (const h of dir.headers) if (!centralSizes.has(h.offset)) centralSizes.set(h.offset, h.compressedSize);
  const walked = walkLocalHeaders(bytes, centralSizes, readBudget.entries, problems);
  const outermost = outermostDirectories(directories, walked, bytes.length);

  if (outermost.length === 0 && walked.size === 0) return { members: [], problems: ['not-a-zip'] };
  // A zip without a central directory is at best truncated: most readers refuse it.
  if (outermost.length === 0 || outermost.some((d) => !d.intact)) problems.add('corrupt');
  if (outermost.length > 1) problems.add('multiple-archives');
  checkFraming(bytes, outermost, walked, problems);

  const members = listMembers(bytes, outermost, walked, limits, problems);
  return { members, problems: [...problems] };
}

// ---------------------------------------------------------------------------------------------------------
// Central directories

function findDirectories(bytes: Buffer, readBudget: { entries: number }, problems: Set<ZipProblem>): Directory[] {
  const directories: Directory[] = [];
  // The same directory is reachable from several end records (a fake one in a comment): read it once.
  const reads = new Map<string, { headers: Header[]; intact: boolean }>();
  for (let at = bytes.indexOf(END_MARK); at >= 0; at = bytes.indexOf(END_MARK, at + 1)) {
    if (at + END_SIZE > bytes.length) break;
    const zip64 = readZip64End(bytes, at);
    const endsAt = zip64[0]?.endsAt ?? at;
    const declared: Declared[] = [
      { count: bytes.readUInt16LE(at + 10), size: bytes.readUInt32LE(at + 12), offset: bytes.readUInt32LE(at + 16), endsAt },
      ...zip64,
    ];
    const headers: Header[] = [];
    let start = at;
    let intact = true;
    for (const d of declared) {
      // The declared offset (yauzl, fflate) and where the directory really is (Python, unzip): they differ
      // by any bytes in front of the archive.
      for (const candidate of new Set([d.offset, d.endsAt - d.size])) {
        if (candidate < 0 || candidate >= at) continue;
        const key = `${candidate}:${d.offset}`;
        const read = reads.get(key) ?? readCentralDirectory(bytes, candidate, candidate - d.offset, readBudget, problems);
        reads.set(key, read);
        if (read.headers.length === 0) continue;
        intact &&= read.intact && (d.count === SATURATED_16 || read.headers.length === d.count);
        for (const header of read.headers) headers.push(header);
        start = Math.min(start, candidate);
      }
    }
    const empty = declared.some((d) => d.count === 0 && d.size === 0);
    const stop = at + END_SIZE + bytes.readUInt16LE(at + 20);
    if (headers.length > 0 || empty) directories.push({ end: at, start, stop, headers, intact });
  }
  return directories;
}

/** The zip64 end record(s) an end record points to through its locator: at the declared offset and where it really is. */
function readZip64End(bytes: Buffer, endAt: number): Declared[] {
  const locator = endAt - ZIP64_LOCATOR_SIZE;
  if (locator < 0 || bytes.readUInt32LE(locator) !== ZIP64_LOCATOR_SIG) return [];
  const found: Declared[] = [];
  for (const record of new Set([locator - ZIP64_END_SIZE, readUInt64(bytes, locator + 8)])) {
    if (record < 0 || record + ZIP64_END_SIZE > locator || bytes.readUInt32LE(record) !== ZIP64_END_SIG) continue;
    found.push({
      count: readUInt64(bytes, record + 32),
      size: readUInt64(bytes, record + 40),
      offset: readUInt64(bytes, record + 48),
      endsAt: record,
    });
  }
  return found;
}

/** Headers from `start` while the signature holds; `base` turns recorded offsets into positions in the input. */
function readCentralDirectory(
  bytes: Buffer,
  start: number,
  base: number,
  readBudget: { entries: number },
  problems: Set<ZipProblem>,
): { headers: Header[]; intact: boolean } {
  const headers: Header[] = [];
  let at = start;
  while (at + 4 <= bytes.length && bytes.readUInt32LE(at) === CENTRAL_HEADER_SIG) {
    if (readBudget.entries-- <= 0) {
      problems.add('member-limit');
      break;
    }
    if (at + CENTRAL_HEADER_SIZE > bytes.length) return { headers, intact: false };
    const nameAt = at + CENTRAL_HEADER_SIZE;
    const extraAt = nameAt + bytes.readUInt16LE(at + 28);
    const commentAt = extraAt + bytes.readUInt16LE(at + 30);
    const next = commentAt + bytes.readUInt16LE(at + 32);
    if (next > bytes.length) return { headers, intact: false };
    const extras = readExtraFields(bytes, extraAt, commentAt);
    // Zip64 values come in a fixed order, one for each saturated field: sizes, then the offset.
    const wide = zip64Values(extras.get(EXTRA_ZIP64));
    const uncompressedSize = wide(bytes.readUInt32LE(at + 24));
    const compressedSize = wide(bytes.readUInt32LE(at + 20));
    const offset = base + wide(bytes.readUInt32LE(at + 42));
    headers.push(describe(bytes, at + 8, bytes.subarray(nameAt, extraAt), extras, compressedSize, uncompressedSize, offset));
    at = next;
  }
  return { headers, intact: true };
}

/**
 * The outermost directories: an end record inside the data of a stored member of an outer archive belongs
 * to a nested zip, which the caller inspects by recursing into that member's data. End records come after
 * their members, so going from the last one back, outer archives are settled before what they contain.
 */
function outermostDirectories(directories: Directory[], walked: Map<number, LocalHeader>, length: number): Directory[] {
  const outermost: Directory[] = [];
  let nested: [number, number][] = [];
  for (let i = directories.length - 1; i >= 0 && outermost.length < MAX_ARCHIVES; i--) {
    const dir = directories[i] as Directory;
    if (contains(nested, dir.end)) continue;
    outermost.unshift(dir);
    nested = mergeRanges([...nested, ...storedDataRanges(dir, walked, length)]);
  }
  return outermost;
}

/** Data of the directory's stored members whose local header agrees with it: what nested archives may hide in. */
function storedDataRanges(dir: Directory, walked: Map<number, LocalHeader>, length: number): [number, number][] {
  const ranges: [number, number][] = [];
  for (const h of dir.headers) {
    const local = walked.get(h.offset);
    if (!local || h.method !== METHOD_STORED || h.encrypted || !agree(h, local)) continue;
    const end = local.dataStart + h.compressedSize;
    if (end <= length) ranges.push([local.dataStart, end]);
  }
  return ranges;
}

function mergeRanges(ranges: [number, number][]): [number, number][] {
  const sorted = ranges.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
    else merged.push([range[0], range[1]]);
  }
  return merged;
}

/** Whether `at` lies inside one of the sorted, disjoint ranges. */
function contains(ranges: [number, number][], at: number): boolean {
  let low = 0;
  let high = ranges.length - 1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const [start, end] = ranges[mid] as [number, number];
    if (at < start) high = mid - 1;
    else if (at >= end) low = mid + 1;
    else return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Local headers

/**
 * What a streaming reader sees: local headers one after the other, each member's data skipped by the size
 * its header gives (or, with a data descriptor, the central directory's). Where that size is unknown the
 * scan goes on inside the data, so nothing after it is missed. Bytes between members are searched too.
 */
function walkLocalHeaders(
  bytes: Buffer,
  centralSizes: Map<number, number>,
  maxHeaders: number,
  problems: Set<ZipProblem>,
): Map<number, LocalHeader> {
  const walked = new Map<number, LocalHeader>();
  let cursor = 0;
  for (let at = bytes.indexOf(LOCAL_HEADER_MARK); at >= 0; at = bytes.indexOf(LOCAL_HEADER_MARK, cursor)) {
    const header = readLocalHeader(bytes, at);
    if (!header) {
      cursor = at + 1;
      continue;
    }
    if (walked.size >= maxHeaders) {
      problems.add('member-limit');
      break;
    }
    walked.set(at, header);
    const size = hasDeferredSizes(header) ? centralSizes.get(at) : header.compressedSize;
    const dataEnd = size === undefined ? header.dataStart : header.dataStart + size;
    cursor = dataEnd <= bytes.length ? dataEnd : header.dataStart;
  }
  return walked;
}

function readLocalHeader(bytes: Buffer, at: number): LocalHeader | undefined {
  if (at < 0 || at + LOCAL_HEADER_SIZE > bytes.length || bytes.readUInt32LE(at) !== LOCAL_HEADER_SIG) return undefined;
  const nameAt = at + LOCAL_HEADER_SIZE;
  const extraAt = nameAt + bytes.readUInt16LE(at + 26);
  const dataStart = extraAt + bytes.readUInt16LE(at + 28);
  if (dataStart > bytes.length) return undefined;
  const extras = readExtraFields(bytes, extraAt, dataStart);
  const wide = zip64Values(extras.get(EXTRA_ZIP64));
  const uncompressedSize = wide(bytes.readUInt32LE(at + 22));
  const compressedSize = wide(bytes.readUInt32LE(at + 18));
  return { ...describe(bytes, at + 6, bytes.subarray(nameAt, extraAt), extras, compressedSize, uncompressedSize, at), dataStart };
}

/** A data descriptor after the data carries the sizes; the local header then usually has zeros. */
function hasDeferredSizes(header: Header): boolean {
  return (header.flags & FLAG_DATA_DESCRIPTOR) !== 0 && header.compressedSize === 0;
}

// ---------------------------------------------------------------------------------------------------------
// Header fields shared by local and central headers

/** Local and central headers share their layout from the flags field on: flags, method, time, date, CRC, sizes. */
function describe(
  bytes: Buffer,
  flagsAt: number,
  rawName: Buffer,
  extras: Map<number, Buffer>,
  compressedSize: number,
  uncompressedSize: number,
  offset: number,
): Header {
  const flags = bytes.readUInt16LE(flagsAt);
  const method = bytes.readUInt16LE(flagsAt + 2);
  const unicodePath = extras.get(EXTRA_UNICODE_PATH);
  const unicodeName =
    unicodePath && unicodePath.length > UNICODE_PATH_PREFIX && unicodePath[0] === UNICODE_PATH_VERSION
      ? unicodePath.subarray(UNICODE_PATH_PREFIX).toString('utf8')
      : undefined;
  return {
    name: flags & FLAG_UTF8 ? rawName.toString('utf8') : decodeCp437(rawName),
    unicodeName,
    flags,
    method,
    compressedSize,
    uncompressedSize,
    encrypted: (flags & ENCRYPTION_FLAGS) !== 0 || method === METHOD_AES || extras.has(EXTRA_AES),
    offset,
  };
}

function decodeCp437(raw: Buffer): string {
  let name = '';
  for (const byte of raw) name += byte < ASCII_END ? String.fromCharCode(byte) : CP437_HIGH.charAt(byte - ASCII_END);
  return name;
}

/** The first extra field of each id (a field cut short ends the list). */
function readExtraFields(bytes: Buffer, start: number, end: number): Map<number, Buffer> {
  const fields = new Map<number, Buffer>();
  let at = start;
  while (at + EXTRA_HEADER_SIZE <= end) {
    const dataEnd = at + EXTRA_HEADER_SIZE + bytes.readUInt16LE(at + 2);
    if (dataEnd > end) break;
    const id = bytes.readUInt16LE(at);
    if (!fields.has(id)) fields.set(id, bytes.subarray(at + EXTRA_HEADER_SIZE, dataEnd));
    at = dataEnd;
  }
  return fields;
}

/**
 * Replaces each saturated 32-bit value, in call order, by the next 64-bit value of the zip64 extra field.
 * A missing value leaves the saturated one, which lies beyond any input and so reads as corrupt.
 */
function zip64Values(field: Buffer | undefined): (value: number) => number {
  let at = 0;
  return (value) => {
    if (value !== SATURATED_32 || !field || at + 8 > field.length) return value;
    const wide = readUInt64(field, at);
    at += 8;
    return wide;
  };
}

/** Beyond 2^53 precision is lost, but such a value is past the end of any input anyway. */
function readUInt64(bytes: Buffer, at: number): number {
  return at + 8 <= bytes.length ? Number(bytes.readBigUInt64LE(at)) : SATURATED_32;
}

/** Whether a central header and the local header it points to describe the same member. */
function agree(central: Header, local: Header): boolean {
  const sizesAgree =
    hasDeferredSizes(local) ||
    (central.compressedSize === local.compressedSize && central.uncompressedSize === local.uncompressedSize);
  return central.name === local.name && central.method === local.method && central.encrypted === local.encrypted && sizesAgree;
}

// ---------------------------------------------------------------------------------------------------------
// The union, with extraction

function checkFraming(bytes: Buffer, outermost: Directory[], walked: Map<number, LocalHeader>, problems: Set<ZipProblem>): void {
  let first = Infinity;
  for (const at of walked.keys()) first = Math.min(first, at);
  for (const dir of outermost) {
    first = Math.min(first, dir.start);
    for (const h of dir.headers) if (h.offset >= 0) first = Math.min(first, h.offset);
  }
  if (first > 0) problems.add('prepended-data');
  const last = outermost[outermost.length - 1];
  if (last && last.stop > bytes.length) problems.add('corrupt');
  if (last && last.stop < bytes.length) problems.add('trailing-data');
}

function listMembers(
  bytes: Buffer,
  outermost: Directory[],
  walked: Map<number, LocalHeader>,
  limits: ArchiveLimits,
  problems: Set<ZipProblem>,
): ZipMember[] {
  const centralAt = new Map<number, Header[]>();
  // Two end records may share a directory (the same header objects): count each header once.
  for (const header of new Set(outermost.flatMap((d) => d.headers))) {
    const list = centralAt.get(header.offset);
    if (list) list.push(header);
    else centralAt.set(header.offset, [header]);
  }
  const offsets = [...new Set([...centralAt.keys(), ...walked.keys()])].sort((a, b) => a - b);
  const budget = { bytes: limits.maxTotalBytes };
  const members: ZipMember[] = [];
  let dataEnd = 0;
  for (const offset of offsets) {
    const centrals = centralAt.get(offset) ?? [];
    const walkedHeader = walked.get(offset);
    const local = walkedHeader ?? readLocalHeader(bytes, offset);
    if (!local) problems.add('corrupt');
    if (centrals.length > 1) problems.add('overlapping-members');
    // A streaming reader never sees a member that no walked header leads to; a directory reader never
    // sees one its directory lacks.
    const seenByBoth = walkedHeader !== undefined && centrals.length > 0 && centrals.every((c) => agree(c, walkedHeader));
    if (outermost.length > 0 && !seenByBoth) problems.add('central-local-mismatch');

    const primary = (centrals[0] ?? local) as Header;
    const size = local && !(centrals.length === 0 && hasDeferredSizes(local)) ? primary.compressedSize : undefined;
    const overlaps = offset < dataEnd;
    if (overlaps) problems.add('overlapping-members');
    if (local && size !== undefined) dataEnd = Math.max(dataEnd, local.dataStart + size);

    const encrypted = [...centrals, ...(local ? [local] : [])].some((h) => h.encrypted);
    let data: Buffer | undefined;
    if (encrypted) problems.add('encrypted');
    else if (local && size !== undefined && !overlaps) {
      const extracted = extract(bytes, primary, local.dataStart, size, limits, budget);
      if (extracted.problem) problems.add(extracted.problem);
      data = extracted.data;
    }
    for (const view of namesAt(centrals, local)) {
      if (members.length >= limits.maxMembers) {
        problems.add('member-limit');
        return members;
      }
      const { name, header, seenIn } = view;
      members.push({
        name,
        data,
        encrypted,
        compressedSize: header.compressedSize,
        uncompressedSize: header.uncompressedSize,
        method: header.method,
        offset,
        seenIn,
      });
    }
  }
  return members;
}

/** Every name the headers at one offset give, with the header that gave it first (central ones first). */
function namesAt(centrals: Header[], local: Header | undefined): { name: string; header: Header; seenIn: ZipMember['seenIn'] }[] {
  const views = new Map<string, { header: Header; central: boolean; local: boolean }>();
  const note = (header: Header, central: boolean): void => {
    for (const name of [header.name, header.unicodeName]) {
      if (name === undefined) continue;
      const view = views.get(name) ?? { header, central: false, local: false };
      if (central) view.central = true;
      else view.local = true;
      views.set(name, view);
    }
  };
  for (const header of centrals) note(header, true);
  if (local) note(local, false);
  return [...views].map(([name, v]) => ({ name, header: v.header, seenIn: v.central && v.local ? 'both' : v.central ? 'central' : 'local' }));
}

/**
 * The member's bytes when they can be had within the limits. Every attempt is charged to the budget,
 * failed ones for the output they were allowed, so repeated bombs cannot multiply the work.
 */
function extract(
  bytes: Buffer,
  header: Header,
  dataStart: number,
  size: number,
  limits: ArchiveLimits,
  budget: { bytes: number },
): { data?: Buffer; problem?: ZipProblem } {
  if (header.method !== METHOD_STORED && header.method !== METHOD_DEFLATE) return { problem: 'unsupported-method' };
  if (dataStart + size > bytes.length) return { problem: 'corrupt' };
  const input = bytes.subarray(dataStart, dataStart + size);
  if (header.method === METHOD_STORED) {
    if (size > budget.bytes) return { problem: 'size-limit' };
    budget.bytes -= size;
    return { data: input, problem: size === header.uncompressedSize ? undefined : 'corrupt' };
  }

  const ratioBound = Math.floor(size * limits.maxRatio);
  if (header.uncompressedSize > ratioBound) return { problem: 'ratio-limit' };
  if (header.uncompressedSize > budget.bytes) return { problem: 'size-limit' };
  // The declared size may lie: the output is capped by whichever limit is nearer.
  const bound = Math.min(budget.bytes, ratioBound, bufferConstants.MAX_LENGTH);
  const overLimit = { problem: bound < ratioBound ? 'size-limit' : 'ratio-limit' } as const;
  let output: Buffer;
  try {
    // maxOutputLength must be positive; one byte more than allowed is caught below.
    output = inflateRawSync(input, { maxOutputLength: Math.max(1, bound) });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') return { problem: 'corrupt' };
    budget.bytes -= bound;
    return overLimit;
  }
  if (output.length > bound) {
    budget.bytes -= bound;
    return overLimit;
  }
  budget.bytes -= output.length;
  return { data: output, problem: output.length === header.uncompressedSize ? undefined : 'corrupt' };
}
