import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as generators from '../../fixtures/generate-mime.js';
import { toCrlf, toLf } from '../../fixtures/generate-mime.js';
import { parseMessage, parseStream, type MimeMessage, type MimePart } from '../../src/index.js';
import { compareWithMailparser } from './differential.js';

interface ExpectedPart {
  path: string;
  contentType: string;
  kind?: MimePart['kind'];
  disposition?: string;
  filename?: string;
  filenames?: string[];
  text?: string;
  size?: number;
  sha256?: string;
}

interface Fixture {
  name: string;
  file?: string;
  generator?: string;
  eol: string;
  description: string;
  expect: {
    parts: ExpectedPart[];
    partial?: boolean;
    defects: string[];
    optionalDefects?: string[];
    headers?: { path: string; name: string; value: string }[];
  };
  mailparserDiffers?: string;
}

const dir = fileURLToPath(new URL('../../fixtures/mime/', import.meta.url));
const manifest = JSON.parse(readFileSync(`${dir}manifest.json`, 'utf8')) as Fixture[];

/** Builds a generated fixture from its call, e.g. "deepNesting(10000)". */
function generate(call: string): Buffer {
  const m = /^(\w+)\(([\d, ]*)\)$/.exec(call);
  const fn = m ? (generators as Record<string, unknown>)[m[1] as string] : undefined;
  if (!m || typeof fn !== 'function') throw new Error(`unknown generator ${call}`);
  const args = (m[2] as string).split(',').filter((a) => a.trim() !== '').map(Number);
  return (fn as (...a: number[]) => Buffer)(...args);
}

function bytesOf(f: Fixture): Buffer {
  return f.file ? readFileSync(`${dir}${f.file}`) : generate(f.generator as string);
}

/**
 * A generated case that expects no limit defect describes its full tree: raise the limits it would hit.
 * Those that expect one are parsed with the defaults.
 */
function optionsFor(f: Fixture): { maxDepth?: number; maxParts?: number; maxHeaderBytes?: number } {
  if (f.expect.defects.some((d) => d.endsWith('-limit-exceeded'))) return {};
  if (f.generator?.startsWith('deepNesting')) return { maxDepth: 20_000, maxParts: 20_000 };
  if (f.generator?.startsWith('manyParts')) return { maxParts: 30_000 };
  if (f.generator?.startsWith('hugeHeaders')) return { maxHeaderBytes: 8 * 1024 * 1024 };
  return {};
}

function describePart(p: MimePart, expected: ExpectedPart): Partial<ExpectedPart> {
  const actual: Partial<ExpectedPart> = { path: p.path, contentType: p.contentType };
  if (expected.kind !== undefined) actual.kind = p.kind;
  if (expected.disposition !== undefined) actual.disposition = p.disposition;
  if ('filename' in expected) actual.filename = p.filename;
  if (expected.filenames !== undefined) actual.filenames = p.filenames;
  if (expected.text !== undefined) actual.text = p.text();
  if (expected.size !== undefined) actual.size = p.content().length;
  if (expected.sha256 !== undefined) actual.sha256 = createHash('sha256').update(p.content()).digest('hex');
  return actual;
}

function checkExpectations(f: Fixture, msg: MimeMessage): void {
  const parts = [...msg.walk()];
  const expected = f.expect.parts;
  if (!f.expect.partial) expect(parts.length).toBe(expected.length);
  expected.forEach((e, i) => {
    const p = parts[i];
    expect(p, `part ${i}`).toBeDefined();
    expect(describePart(p as MimePart, e)).toEqual(e);
  });
  for (const h of f.expect.headers ?? []) expect(msg.part(h.path)?.headers.get(h.name)).toBe(h.value);
  // Decode everything so that lazily found defects are in the list too.
  for (const p of parts) {
    p.text();
    void p.filenames;
  }
  const codes = new Set(msg.defects.map((d) => d.code));
  for (const code of f.expect.defects) expect([...codes], `defect ${code}`).toContain(code);
  const allowed = new Set([...f.expect.defects, ...(f.expect.optionalDefects ?? [])]);
  expect([...codes].filter((c) => !allowed.has(c))).toEqual([]);
}

describe('named MIME fixtures', () => {
  for (const f of manifest) {
    describe(f.name, () => {
      const bytes = bytesOf(f);
      it('round-trips byte for byte', () => {
        const msg = parseMessage(bytes, optionsFor(f));
        expect(msg.toBuffer().equals(bytes)).toBe(true);
      });
      if (f.file) {
        it('round-trips its LF and CRLF variants, and fed in 1..16-byte chunks', async () => {
          for (const variant of [toLf(bytes), toCrlf(bytes)]) expect(parseMessage(variant).toBuffer().equals(variant)).toBe(true);
          const tree = JSON.stringify([...parseMessage(bytes).walk()].map((p) => [p.path, p.contentType, p.size]));
          for (let size = 1; size <= 16; size++) {
            const chunks = Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));
            const streamed = await parseStream(Readable.from(chunks), { blockSize: 1 });
            expect(streamed.toBuffer().equals(bytes)).toBe(true);
            expect(JSON.stringify([...streamed.walk()].map((p) => [p.path, p.contentType, p.size]))).toBe(tree);
          }
        });
      }
      it('parses into the expected tree, texts and defects', () => {
        checkExpectations(f, parseMessage(bytes, optionsFor(f)));
      });
      if (f.file && !f.mailparserDiffers) {
        it('decodes attachments and text as mailparser does', async () => {
          expect(await compareWithMailparser(bytes)).toEqual([]);
        });
      }
    });
  }
});
