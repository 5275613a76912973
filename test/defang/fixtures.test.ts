import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { defang, parseMessage, type Verdict } from '../../src/index.js';

interface ExpectedPart {
  path: string;
  action: string;
  reasons: string[];
  optionalReasons?: string[];
}

interface Case {
  name: string;
  file: string;
  catalogue: string;
  description: string;
  expect: { verdict: Verdict; parts: ExpectedPart[]; gone: string[] };
}

const dir = fileURLToPath(new URL('../../fixtures/defang/', import.meta.url));
const manifest = JSON.parse(readFileSync(`${dir}manifest.json`, 'utf8')) as Case[];

describe('defang bypass fixtures (research catalogue)', () => {
  it('has at least 40 attack cases and a control group', () => {
    expect(manifest.filter((c) => c.catalogue !== 'control').length).toBeGreaterThanOrEqual(40);
    expect(manifest.filter((c) => c.catalogue === 'control').length).toBeGreaterThanOrEqual(5);
  });

  for (const c of manifest) {
    it(`${c.name} (${c.catalogue})`, async () => {
      const input = readFileSync(`${dir}${c.file}`);
      const msg = parseMessage(input);
      const report = defang(msg);
      expect(report.verdict).toBe(c.expect.verdict);

      const acted = report.parts.filter((p) => p.action !== 'accept');
      expect(acted.map((p) => p.path).sort()).toEqual(c.expect.parts.map((p) => p.path).sort());
      for (const want of c.expect.parts) {
        const got = acted.find((p) => p.path === want.path);
        expect(got?.action, `action of ${want.path}`).toBe(want.action);
        const codes = new Set(got?.reasons.map((r) => r.code));
        for (const code of want.reasons) expect([...codes], `reasons of ${want.path}`).toContain(code);
        const allowed = new Set([...want.reasons, ...(want.optionalReasons ?? [])]);
        expect([...codes].filter((code) => !allowed.has(code)), `unexpected reasons of ${want.path}`).toEqual([]);
      }

      const output = msg.toBuffer();
      if (c.expect.verdict === 'clean') expect(output.equals(input)).toBe(true);
      if (c.expect.verdict === 'clean' || c.expect.verdict === 'changed') {
        // What is delivered re-parses, with our tree and with mailparser, and the dangerous content is gone.
        const again = parseMessage(output);
        const oracle = await simpleParser(output);
        const decoded = [
          ...[...again.walk()].filter((p) => p.kind === 'leaf').map((p) => p.content()),
          ...oracle.attachments.map((a) => a.content),
          Buffer.from(oracle.text ?? ''),
          Buffer.from(typeof oracle.html === 'string' ? oracle.html : ''),
        ];
        for (const gone of c.expect.gone) {
          expect(decoded.some((d) => d.includes(Buffer.from(gone, 'utf8'))), `"${gone}" still delivered`).toBe(false);
        }
        // Defanging what was delivered finds nothing more to do.
        if (c.expect.verdict === 'changed') expect(defang(again).parts.filter((p) => p.action !== 'accept')).toEqual([]);
      }
    });
  }
});
