import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';

const clean = 'From: a@example.com\r\nSubject: hello\r\n\r\nJust text.\r\n';
const withExe = [
  'From: a@example.com',
  'Subject: invoice',
  'Content-Type: multipart/mixed; boundary="b"',
  '',
  '--b',
  'Content-Type: text/plain',
  '',
  'See attached.',
  '--b',
  'Content-Type: application/octet-stream; name="invoice.exe"',
  'Content-Transfer-Encoding: base64',
  '',
  Buffer.from('MZ\x90\x00', 'latin1').toString('base64'),
  '--b--',
  '',
].join('\r\n');
const partial = 'From: a@example.com\r\nContent-Type: message/partial; id="x"; number=1; total=2\r\n\r\nfragment\r\n';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('examples/strip-attachments', () => {
  it('defangs a Maildir in place, keeps originals aside and prints a summary', () => {
    dir = mkdtempSync(join(tmpdir(), 'strip-'));
    const maildir = join(dir, 'Maildir');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true });
    writeFileSync(join(maildir, 'cur', '1.host:2,S'), clean);
    writeFileSync(join(maildir, 'new', '2.host'), withExe);
    writeFileSync(join(maildir, 'new', '3.host'), partial);
    const keep = join(dir, 'kept');
    const stdout = execFileSync(process.execPath, ['--import', 'tsx', 'examples/strip-attachments.ts', maildir, '--keep', keep], { encoding: 'utf8' });

    expect(stdout).toContain('3 messages: 1 clean, 1 changed, 0 quarantined, 1 rejected');
    expect(readFileSync(join(maildir, 'cur', '1.host:2,S'), 'utf8')).toBe(clean);
    const defanged = parseMessage(readFileSync(join(maildir, 'new', '2.host')));
    expect(defanged.part('2')?.filename).toBe('WARNING.txt');
    expect(defanged.headers.get('x-milterkit-defang')).toMatch(/^changed;/);
    expect(readFileSync(join(keep, 'originals', '2.host'), 'utf8')).toBe(withExe);
    expect(existsSync(join(maildir, 'new', '3.host'))).toBe(false);
    expect(readFileSync(join(keep, 'reject', '3.host'), 'utf8')).toBe(partial);
    expect(readdirSync(join(maildir, 'new')).sort()).toEqual(['2.host']);
  });
});
