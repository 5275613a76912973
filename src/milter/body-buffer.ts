import { randomBytes } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A message body as the MTA sends it, in chunks: kept in memory up to a threshold, then spilled to a
 * temporary file, so that many large messages in progress do not all sit in memory. At end of message the
 * body is handed over as blocks (never joined in memory): the chunks, or the file read once.
 */
export class BodyBuffer {
  private chunks: Buffer[] = [];
  private bytes = 0;
  private file: { path: string; stream: WriteStream } | undefined;
  /** A failed open or write of the temporary file (missing directory, full disk): the message fails with it. */
  private failure: Error | undefined;
  private readonly thresholdBytes: number;
  private readonly directory: string | undefined;

  /** `directory`: where a spilled body goes; os.tmpdir() when unset, looked up only when needed. */
  constructor(thresholdBytes: number, directory?: string) {
    this.thresholdBytes = thresholdBytes;
    this.directory = directory;
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
    if (!this.file && this.bytes <= this.thresholdBytes) {
      this.chunks.push(chunk);
      return;
    }
    return this.spill(chunk);
  }

  private async spill(chunk: Buffer): Promise<void> {
    if (!this.file) {
      const path = join(this.directory ?? tmpdir(), `milterkit-body-${process.pid}-${randomBytes(8).toString('hex')}`);
      // 'wx': never reuse or follow an existing file.
      const stream = createWriteStream(path, { mode: 0o600, flags: 'wx' });
      stream.on('error', (err) => (this.failure ??= err));
      this.file = { path, stream };
      for (const held of this.chunks.splice(0)) await this.write(held);
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

  /** The whole body as blocks; the buffer is empty afterwards. */
  async take(): Promise<Buffer[]> {
    if (!this.file) {
      const chunks = this.chunks;
      this.reset();
      return chunks;
    }
    const { path, stream } = this.file;
    if (this.failure) {
      const failure = this.failure;
      await this.discard();
      throw failure;
    }
    try {
      await new Promise<void>((resolve, reject) => stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
      return [await readFile(path)];
    } finally {
      // Read or not, the file goes: nothing else holds this body any more.
      await this.discard();
    }
  }

  /** Drops the body (ABORT, a finished or failed message); synchronous unless a file is to be removed. */
  discard(): void | Promise<void> {
    const file = this.file;
    this.reset();
    if (!file) return;
    file.stream.destroy();
    return rm(file.path, { force: true });
  }

  private reset(): void {
    this.failure = undefined;
    this.chunks = [];
    this.bytes = 0;
    this.file = undefined;
  }
}
