import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';

const cli = 'dist/cli/main.js';
const dir = mkdtempSync(join(tmpdir(), 'defang-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const exeMessage = [
  'Subject: x',
  'Content-Type: multipart/mixed; boundary="b"',
  '',
  '--b',
  'Content-Type: text/plain',
  '',
  'hi',
  '--b',
  'Content-Type: application/octet-stream; name="a.scr"',
  'Content-Transfer-Encoding: base64',
  '',
  'TVqQAA==',
  '--b--',
  '',
].join('\r\n');

function run(args: string[], input?: string) {
  return spawnSync(process.execPath, [cli, 'defang', ...args], { encoding: 'utf8', input });
}

describe('milterkit defang', () => {
  it('exits 0 and writes a clean message unchanged', () => {
    const file = join(dir, 'clean.eml');
    writeFileSync(file, 'Subject: hi\r\n\r\nhello\r\n');
    const result = run([file, '-o', join(dir, 'clean.out')]);
    expect(result.status).toBe(0);
    expect(result.stdout).toBe('verdict: clean\n');
    expect(readFileSync(join(dir, 'clean.out'), 'utf8')).toBe('Subject: hi\r\n\r\nhello\r\n');
  });

  it('exits 3 when it changed the message, reports as JSON and writes the result', () => {
    const file = join(dir, 'exe.eml');
    writeFileSync(file, exeMessage);
    const result = run([file, '--json', '-o', join(dir, 'exe.out')]);
    expect(result.status).toBe(3);
    const report = JSON.parse(result.stdout) as { verdict: string; parts: { path: string; action: string }[] };
    expect(report.verdict).toBe('changed');
    expect(report.parts.map((p) => [p.path, p.action])).toEqual([['2', 'replace']]);
    expect(parseMessage(readFileSync(join(dir, 'exe.out'))).part('2')?.filename).toBe('WARNING.txt');
  });

  it('reads stdin, writes the message to stdout and the report to stderr', () => {
    const result = run(['-', '-o', '-'], exeMessage);
    expect(result.status).toBe(3);
    expect(parseMessage(Buffer.from(result.stdout)).part('2')?.filename).toBe('WARNING.txt');
    expect(result.stderr).toContain('verdict: changed');
  });

  it('exits 4 for quarantine and 5 for reject, following the policy file', () => {
    const policy = join(dir, 'policy.json');
    writeFileSync(policy, JSON.stringify({ actions: { 'banned-extension': 'quarantine', 'executable-content': 'quarantine' } }));
    const file = join(dir, 'exe.eml');
    expect(run([file, '--policy', policy]).status).toBe(4);
    const partial = join(dir, 'partial.eml');
    writeFileSync(partial, 'Content-Type: message/partial; id=x; number=1\r\n\r\nx');
    expect(run([partial]).status).toBe(5);
  });

  it('refuses a policy with a typo instead of falling back to defaults', () => {
    const policy = join(dir, 'bad.json');
    writeFileSync(policy, JSON.stringify({ actions: { 'banned-extensions': 'drop' } }));
    const result = run([join(dir, 'exe.eml'), '--policy', policy]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('unknown reason "banned-extensions"');
  });
});
