import { readFile } from 'node:fs/promises';
import { ByteSource } from './byte-source.js';
import { DefectLog } from './defect-log.js';
import { MimeMessage } from './message.js';
import { resolveParseOptions, type ParseOptions } from './options.js';
import { TreeParser } from './parser.js';

/** Parses a source; never throws on malformed input. */
function parseSource(source: ByteSource, options?: ParseOptions): MimeMessage {
  const resolved = resolveParseOptions(options);
  const log = new DefectLog(resolved.fallbackCharset);
  const root = new TreeParser(source, resolved, log).parse();
  log.finishParsing();
  return new MimeMessage(root, log.list, resolved);
}

/** Parses a whole message held in memory. The input is kept (not copied): do not modify it afterwards. */
export function parseMessage(bytes: Uint8Array | string, options?: ParseOptions): MimeMessage {
  return parseSource(ByteSource.from(bytes), options);
}

/**
 * Parses a message held as several buffers (a milter's header block and body chunks, say) without
 * joining them. The buffers are kept, not copied.
 */
export function parseBlocks(blocks: readonly Uint8Array[], options?: ParseOptions): MimeMessage {
  return parseSource(ByteSource.fromBlocks(blocks), options);
}

export interface StreamParseOptions extends ParseOptions {
  /**
   * Chunks smaller than this are gathered into blocks of this size; larger ones are kept as they come.
   * Bounds the number of blocks (1-byte writes) without copying big chunks. Default 64 KiB.
   */
  blockSize?: number;
}

/**
 * Parses a message from a stream (or any async iterable of chunks). The message is held once, as the
 * blocks it arrived in: it is never concatenated into one Buffer.
 */
export async function parseStream(input: AsyncIterable<Uint8Array | string>, options: StreamParseOptions = {}): Promise<MimeMessage> {
  const blockSize = options.blockSize ?? 64 * 1024;
  if (!Number.isInteger(blockSize) || blockSize < 1) throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
  const blocks: Buffer[] = [];
  let open: Buffer | undefined;
  let openLength = 0;
  const flushOpen = (): void => {
    if (open && openLength > 0) blocks.push(open.subarray(0, openLength));
    open = undefined;
    openLength = 0;
  };
  for await (const item of input) {
    const chunk = typeof item === 'string' ? Buffer.from(item, 'utf8') : Buffer.from(item.buffer, item.byteOffset, item.byteLength);
    if (chunk.length >= blockSize) {
      flushOpen();
      blocks.push(chunk);
      continue;
    }
    let offset = 0;
    while (offset < chunk.length) {
      open ??= Buffer.allocUnsafe(blockSize);
      const n = chunk.copy(open, openLength, offset);
      openLength += n;
      offset += n;
      if (openLength === blockSize) flushOpen();
    }
  }
  flushOpen();
  return parseSource(ByteSource.fromBlocks(blocks), options);
}

/** Parses a message file: read once, into a Buffer of exactly its size. */
export async function parseFile(path: string, options?: ParseOptions): Promise<MimeMessage> {
  return parseMessage(await readFile(path), options);
}

