import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadCorpus } from '../../fixtures/corpus.js';
import { toCrlf, toLf } from '../../fixtures/generate-mime.js';
import { parseMessage, parseStream, type MimeMessage } from '../../src/index.js';

const corpus = loadCorpus();

/** The shape of a tree: what a reader of it sees. */
function shape(msg: MimeMessage): string[] {
  return [...msg.walk()].map((p) => `${p.path}|${p.contentType}|${p.kind}|${p.size}|${p.filename ?? ''}`);
}

function* chunksOf(bytes: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

function mismatches(inputs: { name: string; bytes: Buffer }[]): string[] {
  return inputs.filter(({ bytes }) => !parseMessage(bytes).toBuffer().equals(bytes)).map((m) => m.name);
}

describe('golden round trip on the SpamAssassin corpus', () => {
  it('has the whole corpus', () => {
    expect(corpus.length).toBe(6046);
  });

  it('writes every message back byte for byte', () => {
    expect(mismatches(corpus)).toEqual([]);
  });

  it('writes the CRLF variant of every message back byte for byte', () => {
    expect(mismatches(corpus.map((m) => ({ name: m.name, bytes: toCrlf(m.bytes) })))).toEqual([]);
  });

  it('writes the LF variant of every message back byte for byte', () => {
    expect(mismatches(corpus.map((m) => ({ name: m.name, bytes: toLf(toCrlf(m.bytes)) })))).toEqual([]);
  });

  it('gives the same tree for the LF and CRLF variants', () => {
    const differ = corpus.filter((m) => {
      const lf = shape(parseMessage(toLf(toCrlf(m.bytes)))).map((s) => s.replace(/\|\d+\|/, '|'));
      const crlf = shape(parseMessage(toCrlf(m.bytes))).map((s) => s.replace(/\|\d+\|/, '|'));
      return JSON.stringify(lf) !== JSON.stringify(crlf);
    });
    expect(differ.map((m) => m.name)).toEqual([]);
  });
});

describe('streamed input', () => {
  // Every 40th corpus message (about 150), each fed in chunks of 1 to 16 bytes. blockSize 1 keeps every
  // chunk as its own block, so every delimiter, header and line break straddles a seam somewhere.
  const sample = corpus.filter((_, i) => i % 40 === 0);

  for (let size = 1; size <= 16; size++) {
    it(`gives the same tree and bytes when fed in ${size}-byte chunks`, async () => {
      const failures: string[] = [];
      for (const m of sample) {
        const whole = parseMessage(m.bytes);
        const streamed = await parseStream(Readable.from(chunksOf(m.bytes, size)), { blockSize: 1 });
        const same =
          streamed.toBuffer().equals(m.bytes) &&
          JSON.stringify(shape(streamed)) === JSON.stringify(shape(whole)) &&
          JSON.stringify(streamed.defects) === JSON.stringify(whole.defects);
        if (!same) failures.push(m.name);
      }
      expect(failures).toEqual([]);
    });
  }

  it('decodes the same content from a streamed source', async () => {
    const withAttachments = corpus.filter((m) => m.bytes.includes('base64')).slice(0, 40);
    for (const m of withAttachments) {
      const whole = [...parseMessage(m.bytes).walk()].map((p) => p.content().toString('base64'));
      const streamed = await parseStream(Readable.from(chunksOf(m.bytes, 7)), { blockSize: 1 });
      expect([...streamed.walk()].map((p) => p.content().toString('base64'))).toEqual(whole);
    }
  });
});
