import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BodyBuffer } from '../../src/milter/body-buffer.js';

describe('BodyBuffer', () => {
  let directory: string;
  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'milterkit-body-'));
  });
  afterEach(() => rm(directory, { recursive: true, force: true }));

  it('keeps a body under the threshold in memory, as the chunks it came in', async () => {
    const buffer = new BodyBuffer({ thresholdBytes: 100, directory });
    await buffer.push(Buffer.from('abc'));
    await buffer.push(Buffer.from('def'));
    expect(await readdir(directory)).toEqual([]);
    expect((await buffer.take()).map(String)).toEqual(['abc', 'def']);
    expect(buffer.size).toBe(0);
  });

  it('spills past the threshold to a file only the owner can read, and removes it on take', async () => {
    const buffer = new BodyBuffer({ thresholdBytes: 4, directory });
    await buffer.push(Buffer.from('abc'));
    await buffer.push(Buffer.from('defgh'));
    const [file] = await readdir(directory);
    expect(file).toMatch(/^milterkit-body-/);
    expect((await stat(join(directory, file as string))).mode & 0o777).toBe(0o600);
    expect(buffer.size).toBe(8);
    expect(Buffer.concat(await buffer.take()).toString()).toBe('abcdefgh');
    expect(await readdir(directory)).toEqual([]);
  });

  it('removes the file also when reading it back fails', async () => {
    const { mkdir, symlink, unlink } = await import('node:fs/promises');
    const buffer = new BodyBuffer({ thresholdBytes: 0, directory });
    await buffer.push(Buffer.from('abc'));
    const [file] = await readdir(directory);
    // What is at the path by the end of message cannot be read as a file.
    const elsewhere = join(directory, '..', `${file}-dir`);
    await mkdir(elsewhere);
    try {
      await unlink(join(directory, file as string));
      await symlink(elsewhere, join(directory, file as string));
      await expect(buffer.take()).rejects.toThrow(/EISDIR/);
      expect(await readdir(directory)).toEqual([]);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('removes the file on discard (ABORT, closed connection)', async () => {
    const buffer = new BodyBuffer({ thresholdBytes: 0, directory });
    await buffer.push(Buffer.from('x'));
    expect(await readdir(directory)).toHaveLength(1);
    await buffer.discard();
    expect(await readdir(directory)).toEqual([]);
    await buffer.push(Buffer.from('y'));
    expect(Buffer.concat(await buffer.take()).toString()).toBe('y');
  });
});

describe('BodyBuffer: a temporary file that cannot be written', () => {
  it('fails the message (the adapter gives the fallback), never the process', async () => {
    const buffer = new BodyBuffer({ thresholdBytes: 4, directory: join(tmpdir(), 'milterkit-no-such-directory', 'deeper') });
    await expect((async () => {
      await buffer.push(Buffer.from('abc'));
      await buffer.push(Buffer.from('defgh'));
      await buffer.push(Buffer.from('ijk'));
      await buffer.take();
    })()).rejects.toThrow(/ENOENT/);
    await buffer.discard();
  });
});
