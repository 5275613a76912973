import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'dsn-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const original = join(dir, 'original.eml');
writeFileSync(original, 'From: a@example.com\r\nSubject: hi\r\nMessage-ID: <x@example.com>\r\n\r\nbody\r\n');

function run(args: string[]) {
  return spawnSync(process.execPath, ['dist/cli/main.js', 'dsn', ...args], { encoding: 'utf8' });
}

describe('milterkit dsn', () => {
  it('writes a failure DSN for the given recipients', () => {
    const result = run(['--original', original, '--reporting-mta', 'mx.example.org', '--mail-from', 'a@example.com', '--recipient', 'b@example.org:failed:5.1.1:550 5.1.1 no such user', '--remote-mta', 'mail.example.org']);
    expect(result.status).toBe(0);
    const dsn = parseMessage(Buffer.from(result.stdout));
    expect(dsn.root.contentType).toBe('multipart/report');
    const status = dsn.part('2')?.text() ?? '';
    expect(status).toContain('Final-Recipient: rfc822; b@example.org');
    expect(status).toContain('Diagnostic-Code: smtp; 550 5.1.1 no such user');
    expect(status).toContain('Remote-MTA: dns; mail.example.org');
  });

  it('exits 3 when no DSN may be sent, and 2 on bad arguments', () => {
    expect(run(['--original', original, '--reporting-mta', 'mx', '--mail-from', '', '--recipient', 'b@x.org:failed']).status).toBe(3);
    expect(run(['--original', original, '--reporting-mta', 'mx', '--mail-from', 'a@x.org', '--recipient', 'b@x.org:exploded']).status).toBe(2);
    expect(run(['--original', original]).status).toBe(2);
  });
});
