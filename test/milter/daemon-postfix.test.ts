import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startPostfix, type PostfixInstance } from '../support/postfix.js';
import { sendMessage, smtpDialogue } from '../support/smtp-client.js';

let postfix: PostfixInstance;
let daemon: Daemon;
const dir = mkdtempSync(join(tmpdir(), 'milterkit-daemon-'));
const socketPath = join(dir, 'milter.sock');
// Postfix's smtpd runs as the postfix user: it must be able to reach the socket.
chmodSync(dir, 0o755);

beforeAll(async () => {
  // The daemon as users run it, on a unix socket the postfix user can reach.
  daemon = await startDaemon(['--listen', `unix:${socketPath}`, '--socket-mode', '666']);
  postfix = await startPostfix({ users: ['alice'], milter: `unix:${socketPath}`, extraMainCf: { message_size_limit: String(32 * 1024 * 1024) } });
});

afterAll(async () => {
  await postfix?.stop();
  expect(await daemon?.stop()).toBe(0);
  rmSync(dir, { recursive: true, force: true });
});

const exe = Buffer.from('MZ\x90\x00\x03\x00\x00\x00PE\x00\x00', 'latin1').toString('base64');
const dangerous = (subject: string, text = 'See attached.'): string =>
  [
    'From: a@example.com', 'To: alice@lab.test', `Subject: ${subject}`, 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '',
    '--b', 'Content-Type: text/plain', '', text, '--b', 'Content-Type: application/octet-stream; name="invoice.exe"', 'Content-Transfer-Encoding: base64', '', exe, '--b--', '',
  ].join('\r\n');
/** Postfix's local delivery writes Maildir files with LF line ends. */
const asDelivered = (sent: Buffer): Buffer => Buffer.from(sent.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
const verdicts = (): unknown[] => daemon.lines.filter((l) => l.event === 'message').map((l) => l.verdict);

/** A body of `bytes` bytes of ordinary 76-column text lines. */
function bigText(bytes: number): string {
  const line = `${'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(2).slice(0, 76)}\r\n`;
  return line.repeat(Math.ceil(bytes / line.length));
}

describe('milterkit milter (the daemon) behind a real Postfix', () => {
  it('delivers clean mail untouched, defangs a banned attachment, refuses message/partial; logs each message', async () => {
    const clean = 'From: a@example.com\r\nTo: alice@lab.test\r\nSubject: hello\r\nMessage-ID: <c1@example.com>\r\n\r\nJust text.\r\n';
    expect(await sendMessage(postfix.port, clean)).toMatch(/^250 /);
    expect(await sendMessage(postfix.port, dangerous('invoice'))).toMatch(/^250 /);
    const partial = 'From: a@example.com\r\nSubject: part 1\r\nContent-Type: message/partial; id="x"; number=1; total=2\r\n\r\nfragment\r\n';
    expect(await sendMessage(postfix.port, partial)).toBe('550 5.7.1 Message refused: content not accepted by policy');

    const [first, second] = (await postfix.waitForDelivery('alice', 2, 10_000)).map((m) => parseMessage(m));
    expect(first?.headers.get('subject')).toBe('hello');
    expect(first?.headers.get('x-milterkit-defang')).toBeUndefined();
    expect(first?.root.text()).toBe('Just text.\n');
    expect(second?.headers.get('x-milterkit-defang')).toBe('changed; 2 replace banned-extension,executable-content');
    expect(second?.part('1')?.text()).toBe('See attached.');
    expect(second?.part('2')?.filename).toBe('WARNING.txt');
    expect(second?.toBuffer().toString('latin1')).not.toContain(exe);
    expect(verdicts()).toEqual(['clean', 'changed', 'reject']);
  });

  it('handles several messages on one SMTP connection, with raw 8-bit headers kept byte for byte', async () => {
    const before = (await postfix.delivered('alice')).length;
    const eightBit = Buffer.from('From: Jürgen <j@example.com>\r\nTo: alice@lab.test\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <k1@example.com>\r\nSubject: Grüße aus Köln — ünïcödé\r\n\r\nHallo, schöne Grüße.\r\n', 'utf8');
    const replies = await smtpDialogue(postfix.port, [
      'EHLO client.test',
      'MAIL FROM:<j@example.com> BODY=8BITMIME', 'RCPT TO:<alice@lab.test>', 'DATA', Buffer.concat([eightBit, Buffer.from('.')]),
      'MAIL FROM:<a@example.com>', 'RCPT TO:<alice@lab.test>', 'DATA', `${dangerous('Rechnung für Sie')}.`,
      'QUIT',
    ]);
    expect(replies.filter((r) => r.startsWith('250 2.0.0 Ok: queued'))).toHaveLength(2);
    const delivered = (await postfix.waitForDelivery('alice', before + 2, 10_000)).slice(before);
    // The clean 8-bit message: its header block and body exactly as sent (Postfix only prepends its own trace fields).
    expect(delivered[0]?.includes(asDelivered(eightBit))).toBe(true);
    // The defanged one: a new body, but its 8-bit header fields untouched.
    expect(delivered[1]?.includes(Buffer.from('\nSubject: Rechnung für Sie\n', 'utf8'))).toBe(true);
    const defanged = parseMessage(delivered[1] as Buffer);
    expect(defanged.part('2')?.filename).toBe('WARNING.txt');
  });

  it('passes a 10 MB message untouched and defangs a 10 MB message with an attachment', async () => {
    const before = (await postfix.delivered('alice')).length;
    // With Date and Message-ID, which Postfix would otherwise add after the last field.
    const big = Buffer.from(`From: a@example.com\r\nTo: alice@lab.test\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <big1@example.com>\r\nSubject: big\r\n\r\n${bigText(10 * 1024 * 1024)}`);
    expect(await sendMessage(postfix.port, big)).toMatch(/^250 /);
    expect(await sendMessage(postfix.port, dangerous('big with attachment', bigText(10 * 1024 * 1024).trimEnd()))).toMatch(/^250 /);
    const delivered = (await postfix.waitForDelivery('alice', before + 2, 30_000)).slice(before);
    const expected = asDelivered(big);
    expect(delivered[0]?.subarray(delivered[0].length - expected.length).equals(expected)).toBe(true);
    const defanged = parseMessage(delivered[1] as Buffer);
    expect(defanged.part('1')?.content().length).toBeGreaterThan(10_000_000);
    expect(defanged.part('2')?.filename).toBe('WARNING.txt');
    expect(verdicts().slice(-2)).toEqual(['clean', 'changed']);
  }, 60_000);
});
