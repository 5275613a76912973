import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** How a spilled body's file is named: the process that wrote it, so that a sweep can tell orphans. */
export const BODY_FILE_PREFIX = 'milterkit-body-';

/**
 * The body bytes that all messages in progress may hold in memory together (one budget per process,
 * shared by every connection): a body whose next chunk does not fit goes to a temporary file instead.
 * Without it, fifty connections each sending a 7 MB body held 415 MB.
 */
export class MemoryBudget {
  private used = 0;
  /** The limit may change (a reloaded configuration); bytes held stay held. */
  limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  get bytesInUse(): number {
    return this.used;
  }

  /** Takes `bytes` if they fit. */
  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }
}

export interface BodyBufferOptions {
  /** Body bytes of this message kept in memory; beyond, the body goes to a temporary file. */
  thresholdBytes: number;
  /** Where a spilled body goes; os.tmpdir() when unset, looked up only when needed. */
  directory?: string;
  /** Shared with the other messages of the process; none: only the threshold counts. */
  budget?: MemoryBudget;
}

/** A complete body: its chunks, or the file it was spilled to (which stays until `discard`). */
export type CompleteBody = { chunks: Buffer[] } | { file: string };

/**
 * A message body as the MTA sends it, in chunks: kept in memory up to a threshold (and while the
 * process's memory budget allows), then spilled to a temporary file, so that many large messages in
 * progress do not all sit in memory. At end of message the body is handed over as blocks (never joined
 * in memory): the chunks, or the file read once; or, for work done elsewhere, the file's path.
 */
export class BodyBuffer {
  private chunks: Buffer[] = [];
  private bytes = 0;
  /** Bytes held in memory, taken from the budget. */
  private held = 0;
  private file: { path: string; stream: WriteStream; ended: boolean } | undefined;
  /** A failed open or write of the temporary file (missing directory, full disk): the message fails with it. */
  private failure: Error | undefined;
  private readonly options: BodyBufferOptions;

  constructor(options: BodyBufferOptions) {
    this.options = options;
  }

  get size(): number {
    return this.bytes;
  }

  /**
   * Synchronous while the body is in memory: the session arms a timer for a hook only when it returns a
   * promise, and a 1 MB body comes in some thirty pieces.
   */
  push(chunk: Buffer): void | Promise<void> {
    this.bytes += chunk.length;
    if (!this.file && this.bytes <= this.options.thresholdBytes && (this.options.budget?.take(chunk.length) ?? true)) {
      this.chunks.push(chunk);
      this.held += chunk.length;
      return;
    }
    return this.spill(chunk);
  }

  private async spill(chunk: Buffer): Promise<void> {
    if (!this.file) {
      const path = join(this.options.directory ?? tmpdir(), `${BODY_FILE_PREFIX}${process.pid}-${randomBytes(8).toString('hex')}`);
      // 'wx': never reuse or follow an existing file.
      const stream = createWriteStream(path, { mode: 0o600, flags: 'wx' });
      stream.on('error', (err) => (this.failure ??= err));
      this.file = { path, stream, ended: false };
      const held = this.chunks.splice(0);
      for (const piece of held) await this.write(piece);
      this.release();
    }
    await this.write(chunk);
  }

  private write(chunk: Buffer): Promise<void> {
    const stream = (this.file as { stream: WriteStream }).stream;
    return new Promise((resolve, reject) => {
      if (this.failure) reject(this.failure);
      else stream.write(chunk, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Returns the bytes held in memory to the budget. */
  private release(): void {
    this.options.budget?.give(this.held);
    this.held = 0;
  }

  /** The whole body, complete; a spilled one's file is closed and kept (discard removes it). */
  async complete(): Promise<CompleteBody> {
    if (!this.file) return { chunks: this.chunks };
    if (this.failure) throw this.failure;
    const file = this.file;
    if (!file.ended) {
      file.ended = true;
      await new Promise<void>((resolve, reject) => file.stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
    }
    return { file: file.path };
  }

  /** The whole body as blocks; the buffer is empty afterwards (a spilled body's file is gone). */
  async take(): Promise<Buffer[]> {
    try {
      const body = await this.complete();
      return 'chunks' in body ? body.chunks : [await readFile(body.file)];
    } finally {
      // Read or not, the file goes: nothing else holds this body any more.
      await this.discard();
    }
  }

  /** Drops the body (ABORT, a finished or failed message); synchronous unless a file is to be removed. */
  discard(): void | Promise<void> {
    const file = this.file;
    this.release();
    this.failure = undefined;
    this.chunks = [];
    this.bytes = 0;
    this.file = undefined;
    if (!file) return;
    file.stream.destroy();
    return rm(file.path, { force: true });
  }
}
