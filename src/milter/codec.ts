import { isUtf8 } from 'node:buffer';
import { Command, Response } from './protocol.js';

/**
 * The milter wire format, without I/O: frames in, typed commands out; typed responses in, frames out.
 * Kept free of sockets so that it can be fuzzed and tested byte for byte.
 */
export class MilterProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MilterProtocolError';
  }
}

export interface Frame {
  command: number;
  data: Buffer;
  /** A BODY packet that arrived over several reads comes as several frames: all but its last say so. */
  continued?: boolean;
}

/**
 * Splits a byte stream into frames. Postfix sends headers of up to 100 KB in one packet, more than
 * libmilter's 64 KiB limit, so the maximum is an option; a larger length is a protocol error (garbage on
 * the socket), not a reason to allocate gigabytes.
 *
 * Nothing is copied that need not be. Every byte copied here is external memory that V8 reclaims only
 * with a garbage collection, and with large messages those collections were most of the daemon's GC
 * time. A packet inside one read is a view of it. A BODY packet (65,540 bytes with its header, just over
 * a 64 KiB read, so nearly every one spans two reads) comes as views of each read, as `continued` frames:
 * the body is buffered anyway. Any other packet split across reads is copied once, exactly.
 */
export class FrameReader {
  private readonly maxPacketSize: number;
  /** Unconsumed reads, in order; the first one from `offset`. */
  private pending: Buffer[] = [];
  private offset = 0;
  private pendingBytes = 0;

  constructor(maxPacketSize: number) {
    this.maxPacketSize = maxPacketSize;
  }

  /** Bytes of a packet begun and not yet complete. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /** Every frame completed by this chunk; throws MilterProtocolError on an impossible length. */
  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const frames: Frame[] = [];
    while (this.pendingBytes >= 4) {
      const length = this.peekLength();
      if (length < 1) throw new MilterProtocolError('empty milter packet');
      if (length > this.maxPacketSize) throw new MilterProtocolError(`milter packet of ${length} bytes exceeds the limit of ${this.maxPacketSize}`);
      if (this.pendingBytes < 4 + length) break;
      const views = this.take(4 + length);
      if (views.length === 1) {
        const packet = views[0] as Buffer;
        frames.push({ command: packet[4] as number, data: packet.subarray(5) });
        continue;
      }
      const first = views[0] as Buffer;
      const header = first.length >= 5 ? first : Buffer.concat(views, 5);
      const command = header[4] as number;
      if (command !== Command.BODY) {
        frames.push({ command, data: Buffer.concat(views, 4 + length).subarray(5) });
        continue;
      }
      const pieces = dropBytes(views, 5);
      pieces.forEach((data, i) => frames.push(i < pieces.length - 1 ? { command, data, continued: true } : { command, data }));
    }
    return frames;
  }

  /** The big-endian length prefix, which may itself straddle reads. */
  private peekLength(): number {
    const first = this.pending[0] as Buffer;
    if (first.length - this.offset >= 4) return first.readUInt32BE(this.offset);
    let length = 0;
    let index = 0;
    let at = this.offset;
    for (let i = 0; i < 4; i++) {
      while (at >= (this.pending[index] as Buffer).length) {
        index++;
        at = 0;
      }
      length = length * 256 + ((this.pending[index] as Buffer)[at++] as number);
    }
    return length;
  }

  /** Views of the next `size` bytes, one per read they lie in. */
  private take(size: number): Buffer[] {
    this.pendingBytes -= size;
    const views: Buffer[] = [];
    let left = size;
    while (left > 0) {
      const current = this.pending[0] as Buffer;
      const count = Math.min(left, current.length - this.offset);
      views.push(current.subarray(this.offset, this.offset + count));
      left -= count;
      this.offset += count;
      if (this.offset === current.length) {
        this.pending.shift();
        this.offset = 0;
      }
    }
    return views;
  }
}

/** The views without their first `count` bytes (empty views dropped; at least one view stays). */
function dropBytes(views: Buffer[], count: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = count;
  for (const view of views) {
    if (skip >= view.length) {
      skip -= view.length;
      continue;
    }
    rest.push(view.subarray(skip));
    skip = 0;
  }
  return rest.length > 0 ? rest : [Buffer.alloc(0)];
}

export function encodeFrame(command: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const frame = Buffer.allocUnsafe(5 + data.length);
  frame.writeUInt32BE(1 + data.length, 0);
  frame[4] = command;
  data.copy(frame, 5);
  return frame;
}

/** Text from the MTA: UTF-8 when it is (SMTPUTF8), else one character per byte. */
export function decodeText(bytes: Buffer): string {
  return isUtf8(bytes) ? bytes.toString('utf8') : bytes.toString('latin1');
}

/** NUL-terminated strings to the end of the packet (a missing final NUL is tolerated). */
function splitStrings(data: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length;
    parts.push(data.subarray(start, end));
    start = end + 1;
  }
  return parts;
}

export type ConnectFamily = 'unknown' | 'unix' | 'inet' | 'inet6';

export type MtaCommand =
  | { type: 'optneg'; version: number; actions: number; protocol: number }
  | { type: 'macro'; stage: number; macros: Map<string, string> }
  | { type: 'connect'; hostname: string; family: ConnectFamily; port: number | undefined; address: string | undefined }
  | { type: 'helo'; name: string }
  | { type: 'mail'; sender: string; args: string[] }
  | { type: 'rcpt'; recipient: string; args: string[] }
  | { type: 'data' }
  | { type: 'header'; name: string; value: Buffer }
  | { type: 'eoh' }
  | { type: 'body'; chunk: Buffer }
  | { type: 'eom'; chunk: Buffer }
  | { type: 'abort' }
  | { type: 'quit' }
  | { type: 'quit-nc' }
  | { type: 'unknown'; line: string };

const FAMILIES: Readonly<Record<number, ConnectFamily>> = { 0x55: 'unknown', 0x4c: 'unix', 0x34: 'inet', 0x36: 'inet6' };

function parseConnect(data: Buffer): MtaCommand {
  const nul = data.indexOf(0);
  if (nul < 0 || nul + 1 >= data.length) throw new MilterProtocolError('malformed CONNECT');
  const hostname = decodeText(data.subarray(0, nul));
  const family = FAMILIES[data[nul + 1] as number];
  if (!family) throw new MilterProtocolError(`unknown CONNECT family ${data[nul + 1]}`);
  if (family === 'unknown') return { type: 'connect', hostname, family, port: undefined, address: undefined };
  if (data.length < nul + 4) throw new MilterProtocolError('truncated CONNECT');
  const port = data.readUInt16BE(nul + 2);
  let address = decodeText(splitStrings(data.subarray(nul + 4))[0] ?? Buffer.alloc(0));
  // Sendmail writes IPv6 addresses as "IPv6:2001:db8::1", others may bracket them.
  if (family === 'inet6') address = address.replace(/^IPv6:/i, '').replace(/^\[(.*)\]$/, '$1');
  return { type: 'connect', hostname, family, port, address };
}

function parseMacros(data: Buffer): MtaCommand {
  if (data.length < 1) throw new MilterProtocolError('empty MACRO');
  const parts = splitStrings(data.subarray(1));
  const macros = new Map<string, string>();
  // An odd count (a name with no value) happens: the value is then empty.
  for (let i = 0; i < parts.length; i += 2) macros.set(decodeText(parts[i] as Buffer), decodeText(parts[i + 1] ?? Buffer.alloc(0)));
  return { type: 'macro', stage: data[0] as number, macros };
}

export function parseCommand(frame: Frame): MtaCommand {
  const { command, data } = frame;
  switch (command) {
    case Command.OPTNEG:
      if (data.length < 12) throw new MilterProtocolError('short OPTNEG');
      return { type: 'optneg', version: data.readUInt32BE(0), actions: data.readUInt32BE(4), protocol: data.readUInt32BE(8) };
    case Command.MACRO:
      return parseMacros(data);
    case Command.CONNECT:
      return parseConnect(data);
    case Command.HELO:
      return { type: 'helo', name: decodeText(splitStrings(data)[0] ?? Buffer.alloc(0)) };
    case Command.MAIL:
    case Command.RCPT: {
      const [first, ...rest] = splitStrings(data).map(decodeText);
      const address = first ?? '';
      return command === Command.MAIL ? { type: 'mail', sender: address, args: rest } : { type: 'rcpt', recipient: address, args: rest };
    }
    case Command.DATA:
      return { type: 'data' };
    case Command.HEADER: {
      const nul = data.indexOf(0);
      if (nul < 0) throw new MilterProtocolError('malformed HEADER');
      const end = data.indexOf(0, nul + 1);
      return { type: 'header', name: data.subarray(0, nul).toString('latin1'), value: data.subarray(nul + 1, end < 0 ? data.length : end) };
    }
    case Command.EOH:
      return { type: 'eoh' };
    case Command.BODY:
      return { type: 'body', chunk: data };
    case Command.BODYEOB:
      return { type: 'eom', chunk: data };
    case Command.ABORT:
      return { type: 'abort' };
    case Command.QUIT:
      return { type: 'quit' };
    case Command.QUIT_NC:
      return { type: 'quit-nc' };
    case Command.UNKNOWN:
      return { type: 'unknown', line: decodeText(splitStrings(data)[0] ?? Buffer.alloc(0)) };
    default:
      throw new MilterProtocolError(`unknown milter command 0x${command.toString(16)}`);
  }
}

const nul = (text: string | Buffer): Buffer => Buffer.concat([typeof text === 'string' ? Buffer.from(text, 'utf8') : text, Buffer.from([0])]);
const uint32 = (n: number): Buffer => {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};

/** A response, as the session sends it. */
export type MilterResponse =
  | { type: 'optneg'; version: number; actions: number; protocol: number; macros?: ReadonlyMap<number, string> }
  | { type: 'continue' | 'accept' | 'reject' | 'tempfail' | 'discard' | 'skip' | 'progress' | 'shutdown' }
  | { type: 'replycode'; reply: string }
  | { type: 'addheader'; name: string; value: string }
  | { type: 'insheader'; index: number; name: string; value: string }
  | { type: 'chgheader'; index: number; name: string; value: string }
  | { type: 'addrcpt'; recipient: string; args?: string }
  | { type: 'delrcpt'; recipient: string }
  | { type: 'chgfrom'; sender: string; args?: string }
  | { type: 'replbody'; chunk: Buffer }
  | { type: 'quarantine'; reason: string };

const SIMPLE: Readonly<Record<string, number>> = {
  continue: Response.CONTINUE,
  accept: Response.ACCEPT,
  reject: Response.REJECT,
  tempfail: Response.TEMPFAIL,
  discard: Response.DISCARD,
  skip: Response.SKIP,
  progress: Response.PROGRESS,
  shutdown: Response.SHUTDOWN,
};

export function encodeResponse(r: MilterResponse): Buffer {
  switch (r.type) {
    case 'optneg': {
      const lists = [...(r.macros ?? new Map<number, string>())].map(([stage, names]) => Buffer.concat([uint32(stage), nul(names)]));
      return encodeFrame(Response.OPTNEG, Buffer.concat([uint32(r.version), uint32(r.actions), uint32(r.protocol), ...lists]));
    }
    case 'replycode':
      return encodeFrame(Response.REPLYCODE, nul(r.reply));
    case 'addheader':
      return encodeFrame(Response.ADDHEADER, Buffer.concat([nul(r.name), nul(r.value)]));
    case 'insheader':
      return encodeFrame(Response.INSHEADER, Buffer.concat([uint32(r.index), nul(r.name), nul(r.value)]));
    case 'chgheader':
      return encodeFrame(Response.CHGHEADER, Buffer.concat([uint32(r.index), nul(r.name), nul(r.value)]));
    case 'addrcpt':
      return r.args ? encodeFrame(Response.ADDRCPT_PAR, Buffer.concat([nul(r.recipient), nul(r.args)])) : encodeFrame(Response.ADDRCPT, nul(r.recipient));
    case 'delrcpt':
      return encodeFrame(Response.DELRCPT, nul(r.recipient));
    case 'chgfrom':
      return encodeFrame(Response.CHGFROM, r.args ? Buffer.concat([nul(r.sender), nul(r.args)]) : nul(r.sender));
    case 'replbody':
      return encodeFrame(Response.REPLBODY, r.chunk);
    case 'quarantine':
      return encodeFrame(Response.QUARANTINE, nul(r.reason));
    default:
      return encodeFrame(SIMPLE[r.type] as number);
  }
}
