import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createPart, parseBlocks, parseMessage } from '../../src/index.js';
import { bodyChunks } from '../../src/mime/serializer.js';

/** A generated MIME tree, rendered to bytes with every layout choice real mail makes. */
type Tree =
  | { kind: 'leaf'; type: string; headerLines: string[]; lines: string[] }
  | { kind: 'multipart'; preamble: string[]; epilogue: string[]; padding: string[]; closed: boolean; children: Tree[] };

const line = fc.stringMatching(/^[a-zA-Z0-9 .=:;,][a-zA-Z0-9 .=:;,\t-]{0,60}$/);
const headerLine = fc.tuple(fc.constantFrom('X-A', 'Subject', 'Comments', 'X-Folded'), fc.array(line, { minLength: 1, maxLength: 3 })).map(
  // Continuation lines start with whitespace: a folded field.
  ([name, parts]) => `${name}: ${parts.join('\n ')}`,
);

const leaf: fc.Arbitrary<Tree> = fc.record({
  kind: fc.constant('leaf' as const),
  type: fc.constantFrom('text/plain', 'text/html', 'application/octet-stream', ''),
  headerLines: fc.array(headerLine, { maxLength: 3 }),
  lines: fc.array(line, { maxLength: 5 }),
});

const tree: fc.Arbitrary<Tree> = fc.letrec<{ node: Tree }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.record({
      kind: fc.constant('multipart' as const),
      preamble: fc.array(line, { maxLength: 2 }),
      epilogue: fc.array(line, { maxLength: 2 }),
      padding: fc.array(fc.constantFrom('', ' ', '\t', '  \t'), { minLength: 6, maxLength: 6 }),
      closed: fc.boolean(),
      children: fc.array(tie('node'), { minLength: 1, maxLength: 4 }),
    }),
  ),
})).node;

/** Renders a tree; returns the bytes and, for each leaf, where its body lies. */
function render(root: Tree, eol: string): { bytes: Buffer; leaves: { start: number; end: number }[] } {
  let out = '';
  const leaves: { start: number; end: number }[] = [];
  let counter = 0;
  const emit = (node: Tree, trailer: boolean): void => {
    if (node.kind === 'leaf') {
      const headers = [...node.headerLines.map((h) => h.replace(/\n/g, eol))];
      if (node.type) headers.push(`Content-Type: ${node.type}`);
      out += headers.map((h) => h + eol).join('') + eol;
      const start = out.length;
      out += node.lines.join(eol);
      leaves.push({ start, end: out.length });
      return;
    }
    const boundary = `b${counter++}=_x`;
    out += `Content-Type: multipart/mixed; boundary="${boundary}"${eol}${eol}`;
    out += node.preamble.map((l) => l + eol).join('');
    node.children.forEach((child, i) => {
      out += `${i === 0 ? '' : eol}--${boundary}${node.padding[i % 6]}${eol}`;
      emit(child, i === node.children.length - 1 && !node.closed ? trailer : false);
    });
    if (node.closed) {
      out += `${eol}--${boundary}--${node.padding[5]}`;
      if (node.epilogue.length > 0) out += eol + node.epilogue.join(eol);
    }
  };
  emit(root, true);
  return { bytes: Buffer.from(out, 'latin1'), leaves };
}

const eol = fc.constantFrom('\r\n', '\n');

describe('properties', () => {
  it('any bytes at all parse without throwing and serialize back unchanged', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const buf = Buffer.from(bytes);
        const msg = parseMessage(buf);
        for (const part of msg.walk()) {
          part.content();
          part.text();
          void part.filenames;
        }
        expect(msg.toBuffer().equals(buf)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('mail-shaped noise (delimiters, headers, encodings) parses and round-trips', () => {
    const token = fc.constantFrom(
      '--b', '--b--', '--c', '--c--', '\r\n', '\n', '\r', ' ', 'Content-Type: multipart/mixed; boundary=b',
      'Content-Type: multipart/alternative; boundary="c"', 'Content-Type: message/rfc822', 'Content-Transfer-Encoding: base64',
      'Content-Transfer-Encoding: quoted-printable', '=?utf-8?B?w6Q=?=', 'filename*0*=utf-8\'\'%C3', '=', 'text', ':', 'QUJD',
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 60 }), (tokens) => {
        const buf = Buffer.from(tokens.join(''), 'latin1');
        const msg = parseMessage(buf);
        for (const part of msg.walk()) {
          part.content();
          void part.filenames;
        }
        expect(msg.toBuffer().equals(buf)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });

  it('generated trees round-trip and parse into the generated structure', () => {
    fc.assert(
      fc.property(tree, eol, (t, e) => {
        const { bytes, leaves } = render(t, e);
        const msg = parseMessage(bytes);
        expect(msg.toBuffer().equals(bytes)).toBe(true);
        const parsedLeaves = [...msg.walk()].filter((p) => p.kind === 'leaf');
        expect(parsedLeaves.length).toBe(leaves.length);
        parsedLeaves.forEach((p, i) => {
          const expected = bytes.subarray(leaves[i]?.start, leaves[i]?.end);
          expect(p.content().equals(expected)).toBe(true);
        });
      }),
      { numRuns: 500 },
    );
  });

  it('a message split into blocks at any points parses exactly as the whole (parseBlocks)', () => {
    fc.assert(
      fc.property(tree, eol, fc.array(fc.nat(), { maxLength: 8 }), (t, e, cuts) => {
        const { bytes } = render(t, e);
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const blocks = [0, ...points].map((start, i) => bytes.subarray(start, points[i] ?? bytes.length));
        const whole = parseMessage(bytes);
        const split = parseBlocks(blocks);
        expect(split.toBuffer().equals(bytes)).toBe(true);
        expect([...split.walk()].map((p) => p.path)).toEqual([...whole.walk()].map((p) => p.path));
        expect(Buffer.concat(bodyChunks(split.root)).equals(Buffer.concat(bodyChunks(whole.root)))).toBe(true);
        [...split.walk()].filter((p) => p.kind === 'leaf').forEach((p, i) => {
          expect(p.content().equals([...whole.walk()].filter((q) => q.kind === 'leaf')[i]?.content() ?? Buffer.alloc(0))).toBe(true);
        });
      }),
      { numRuns: 500 },
    );
  });

  it('replacing one leaf changes only the bytes of that leaf', () => {
    fc.assert(
      fc.property(tree, eol, fc.nat(), (t, e, pick) => {
        const { bytes, leaves } = render(t, e);
        const msg = parseMessage(bytes);
        const parsedLeaves = [...msg.walk()].filter((p) => p.kind === 'leaf');
        const index = pick % parsedLeaves.length;
        const target = parsedLeaves[index];
        const range = leaves[index];
        if (!target || !range) return;
        const isRoot = target.parent === undefined;
        target.setContent('replaced', { contentType: 'text/plain' });
        const out = msg.toBuffer();
        // Everything before the leaf's headers and after its body is unchanged.
        const headerStart = isRoot ? 0 : bytes.lastIndexOf(Buffer.from(e), bytes.lastIndexOf(Buffer.from('--b'), range.start)) ;
        const after = bytes.subarray(range.end);
        expect(out.subarray(out.length - after.length).equals(after)).toBe(true);
        expect(out.subarray(0, Math.max(0, headerStart)).equals(bytes.subarray(0, Math.max(0, headerStart)))).toBe(true);
        const reparsed = [...parseMessage(out).walk()].filter((p) => p.kind === 'leaf');
        expect(reparsed[index]?.text()).toBe('replaced');
        reparsed.forEach((p, i) => {
          if (i !== index) expect(p.content().equals(bytes.subarray(leaves[i]?.start, leaves[i]?.end))).toBe(true);
        });
      }),
      { numRuns: 500 },
    );
  });

  it('an edited header re-folds only that header', () => {
    fc.assert(
      fc.property(tree, eol, fc.string({ maxLength: 200 }), (t, e, subject) => {
        const { bytes } = render(t, e);
        const msg = parseMessage(bytes);
        const before = msg.toBuffer().toString('latin1');
        msg.headers.add('X-Added', subject);
        const out = msg.toBuffer().toString('latin1');
        const rootHeaderEnd = before.startsWith(e) ? 0 : before.indexOf(e + e) >= 0 ? before.indexOf(e + e) + e.length : before.length;
        expect(out.slice(0, rootHeaderEnd)).toBe(before.slice(0, rootHeaderEnd));
        expect(out.slice(out.length - (before.length - rootHeaderEnd))).toBe(before.slice(rootHeaderEnd));
        expect(parseMessage(Buffer.from(out, 'latin1')).headers.get('x-added')).toBe(subject.replace(/[\r\n]+/g, ' ').trim());
      }),
      { numRuns: 500 },
    );
  });

  it('new parts built with createPart round-trip their content whatever it is', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 500 }), fc.string({ maxLength: 300 }), fc.string({ minLength: 1, maxLength: 40 }), (bin, text, name) => {
        const root = createPart({ contentType: 'multipart/mixed' });
        root.append(createPart({ contentType: 'text/plain', content: text }));
        root.append(createPart({ contentType: 'application/octet-stream', content: bin, filename: name }));
        const holder = parseMessage('Subject: x\r\n\r\n');
        holder.root.replaceWith(root);
        const reparsed = parseMessage(holder.toBuffer());
        expect(reparsed.part('1')?.text()).toBe(text);
        expect(reparsed.part('2')?.content().equals(Buffer.from(bin))).toBe(true);
        expect(reparsed.part('2')?.filename).toBe(name);
      }),
      { numRuns: 500 },
    );
  });
});
