import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { extractAttachments } from '../../examples/extract-attachments.js';

const pdf = Buffer.from('%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n', 'latin1');
const exe = Buffer.from([0x4d, 0x5a, 0x90, 0x00, 0x03, 0x00]);

function message(subject: string, parts: string[]): string {
  return [
    `Subject: ${subject}`,
    'Content-Type: multipart/mixed; boundary="b"',
    '',
    ...parts.flatMap((p) => ['--b', p]),
    '--b--',
    '',
  ].join('\n');
}

const first = message('report', [
  'Content-Type: text/plain\n\nSee attached.',
  `Content-Type: application/pdf; name="report.pdf"\nContent-Transfer-Encoding: base64\n\n${pdf.toString('base64')}`,
]);
// A hostile name: a path, a right-to-left override that shows "exe.pdf" as "fdp.exe", RFC 2231 encoded.
const second = message('From the road', [
  "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename*=utf-8''..%2F..%2Finvoice%E2%80%AEfdp.exe\nContent-Transfer-Encoding: base64\n\n" +
    exe.toString('base64'),
  `Content-Type: application/pdf; name="report.pdf"\nContent-Transfer-Encoding: base64\n\n${pdf.toString('base64')}`,
  'Content-Type: image/png\nContent-Transfer-Encoding: base64\n\niVBORw0KGgo=',
]);
// An mbox: "From " separators, a blank line between messages, and an mboxrd-quoted body line.
const mbox = `From alice@example.com Tue Nov 24 10:00:00 2026\n${first.replace('See attached.', 'See attached.\n>From here on')}\nFrom bob@example.com Tue Nov 24 11:00:00 2026\n${second}\n`;

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('examples/extract-attachments', () => {
  it('writes every attachment of every mbox message with a safe, unique name', () => {
    dir = mkdtempSync(join(tmpdir(), 'extract-'));
    const out = join(dir, 'out');
    const written = extractAttachments(Buffer.from(mbox, 'latin1'), out);
    expect(written.map((p) => p.slice(out.length + 1))).toEqual(['report.pdf', '_.._invoice_fdp.exe', 'report (2).pdf', 'message2-part3.bin']);
    expect(readFileSync(join(out, 'report.pdf')).equals(pdf)).toBe(true);
    expect(readFileSync(join(out, '_.._invoice_fdp.exe')).equals(exe)).toBe(true);
    expect(readdirSync(dir)).toEqual(['out']);
  });

  it('runs from the command line on an .eml file', () => {
    dir = mkdtempSync(join(tmpdir(), 'extract-'));
    const eml = join(dir, 'one.eml');
    writeFileSync(eml, first);
    const stdout = execFileSync(process.execPath, ['--import', 'tsx', 'examples/extract-attachments.ts', eml, join(dir, 'files')], { encoding: 'utf8' });
    expect(stdout.trim()).toBe(join(dir, 'files', 'report.pdf'));
    expect(readFileSync(join(dir, 'files', 'report.pdf')).equals(pdf)).toBe(true);
  });
});
