import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bigAttachment, bigAttachmentPayload, deepNesting, hugeHeaders, longLines, manyParts } from '../../fixtures/generate-mime.js';
import { DEFAULT_PARSE_OPTIONS, parseMessage } from '../../src/index.js';

describe('limits degrade, never throw', () => {
  it('treats a part past maxDepth as a leaf, with a defect, and still round-trips 10,000 levels', () => {
    const input = deepNesting(10_000);
    const msg = parseMessage(input);
    expect(msg.toBuffer().equals(input)).toBe(true);
    const parts = [...msg.walk()];
    expect(parts.length).toBe(DEFAULT_PARSE_OPTIONS.maxDepth + 1);
    const deepest = parts[parts.length - 1];
    expect(deepest?.kind).toBe('leaf');
    expect(deepest?.contentType).toBe('multipart/mixed');
    expect(msg.defects.filter((d) => d.code === 'depth-limit-exceeded').map((d) => d.path)).toEqual([deepest?.path]);
  });

  it('parses all 10,000 levels when allowed, and edits the deepest part without recursion', () => {
    const input = deepNesting(10_000);
    const msg = parseMessage(input, { maxDepth: 20_000, maxParts: 20_000 });
    const parts = [...msg.walk()];
    expect(parts.length).toBe(10_001);
    const leaf = parts[parts.length - 1];
    expect(leaf?.path).toBe(Array(10_000).fill('1').join('.'));
    expect(leaf?.text()).toBe('leaf at depth 10000');
    expect(msg.defects).toEqual([]);
    leaf?.setContent('edited');
    const out = msg.toBuffer();
    const reparsed = parseMessage(out, { maxDepth: 20_000, maxParts: 20_000 });
    expect([...reparsed.walk()].pop()?.text()).toBe('edited');
  });

  it('keeps the rest of a multipart raw past maxParts', () => {
    const input = manyParts(50);
    const msg = parseMessage(input, { maxParts: 10 });
    expect(msg.toBuffer().equals(input)).toBe(true);
    expect(msg.root.children.length).toBe(9);
    expect(msg.defects.map((d) => d.code)).toEqual(['part-limit-exceeded']);
  });

  it('parses megabytes of headers in full by default', () => {
    const input = hugeHeaders(3 * 1024 * 1024);
    const msg = parseMessage(input);
    expect(msg.toBuffer().equals(input)).toBe(true);
    expect(msg.headers.length).toBeGreaterThan(39_000);
    expect(msg.root.contentType).toBe('text/html');
    expect(msg.defects).toEqual([]);
  });

  it('keeps header bytes past maxHeaderBytes raw and says so', () => {
    const input = hugeHeaders(3 * 1024 * 1024);
    const msg = parseMessage(input, { maxHeaderBytes: 64 * 1024 });
    expect(msg.toBuffer().equals(input)).toBe(true);
    expect(msg.headers.length).toBeLessThan(1000);
    // The Content-Type came after the limit: it is not interpreted, and the defect tells a filter so.
    expect(msg.root.contentType).toBe('text/plain');
    expect(msg.defects.map((d) => d.code)).toEqual(['header-limit-exceeded']);
    // A field added now goes after the interpreted ones, before the raw rest.
    msg.headers.add('X-Checked', 'yes');
    const out = msg.toBuffer();
    expect(out.length).toBe(input.length + 'X-Checked: yes\r\n'.length);
    expect(parseMessage(out).headers.get('x-checked')).toBe('yes');
  });

  it('handles a 200 KB header line and a 2 MB body line', () => {
    const input = longLines();
    const msg = parseMessage(input);
    expect(msg.toBuffer().equals(input)).toBe(true);
    expect(msg.headers.get('x-long-header')?.length).toBe(200 * 1024 - 'X-Long-Header: '.length);
    expect(msg.root.text().length).toBe(2 * 1024 * 1024);
  });

  it('rejects nonsensical limit values instead of silently using defaults', () => {
    expect(() => parseMessage('x', { maxDepth: 0 })).toThrow(RangeError);
    expect(() => parseMessage('x', { maxParts: Number.NaN })).toThrow(RangeError);
  });
});

describe('big messages', () => {
  it('streams a 50 MB message with a 40 MB attachment holding it once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'milterkit-big-'));
    try {
      const file = join(dir, 'big.eml');
      const input = bigAttachment(50 * 1024 * 1024);
      writeFileSync(file, input);
      // A fresh process, so that its peak RSS is this message's alone.
      const script = `
        import { createReadStream, createWriteStream } from 'node:fs';
        import { parseStream } from './src/index.ts';
        const before = process.memoryUsage().rss;
        const msg = await parseStream(createReadStream(process.argv[1], { highWaterMark: 1 << 20 }));
        const attachment = msg.part('2');
        await msg.writeTo(createWriteStream('/dev/null'));
        const peak = process.resourceUsage().maxRSS * 1024;
        console.log(JSON.stringify({ grew: peak - before, name: attachment.filename, size: attachment.size }));
      `;
      const result = JSON.parse(
        execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, file], { encoding: 'utf8' }),
      ) as { grew: number; name: string; size: number };
      expect(result.name).toBe('big.bin');
      expect(result.size).toBeGreaterThan(40 * 1024 * 1024);
      expect(result.grew).toBeLessThan(1.5 * input.length);
      const payload = bigAttachmentPayload(50 * 1024 * 1024);
      expect(parseMessage(input).part('2')?.content().equals(payload)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
