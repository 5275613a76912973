import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { freePort } from '../support/free-port.js';
import { startSendmail, type SendmailInstance } from '../support/sendmail.js';
import { sendMessage, smtpDialogue } from '../support/smtp-client.js';

// The same daemon as behind Postfix, behind Sendmail 8.17 (INPUT_MAIL_FILTER, inet socket): Sendmail's
// milter client negotiates, sends macros and chunks the body its own way, and applies the changes itself.

let sendmail: SendmailInstance;
let daemon: Daemon;
let relay: SMTPServer;
const relayed: Buffer[] = [];
const arrivals = new Set<() => void>();

/** Resolves with the relayed messages once there are at least `count`. */
function waitForRelayed(count: number, timeoutMs = 20_000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (relayed.length < count) return;
      arrivals.delete(check);
      clearTimeout(timer);
      resolve(relayed.slice());
    };
    const timer = setTimeout(() => {
      arrivals.delete(check);
      reject(new Error(`${relayed.length} of ${count} messages relayed; sendmail said: ${sendmail.output()}`));
    }, timeoutMs);
    arrivals.add(check);
    check();
  });
}

beforeAll(async () => {
  relay = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    size: 64 * 1024 * 1024,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        relayed.push(Buffer.concat(chunks));
        for (const arrival of arrivals) arrival();
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const relayPort = (relay.server.address() as { port: number }).port;
  const milterPort = await freePort();
  daemon = await startDaemon(['--listen', `inet:${milterPort}@127.0.0.1`]);
  sendmail = await startSendmail({ milter: `inet:${milterPort}@127.0.0.1`, relayPort });
});

afterAll(async () => {
  await sendmail?.stop();
  expect(await daemon?.stop()).toBe(0);
  await new Promise<void>((resolve) => (relay ? relay.close(() => resolve()) : resolve()));
});

const exe = Buffer.from('MZ\x90\x00\x03\x00\x00\x00PE\x00\x00', 'latin1').toString('base64');
const dangerous = (subject: string, text = 'See attached.'): string =>
  [
    'From: a@example.com', 'To: alice@lab.test', `Subject: ${subject}`, 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '',
    '--b', 'Content-Type: text/plain', '', text, '--b', 'Content-Type: application/octet-stream; name="invoice.exe"', 'Content-Transfer-Encoding: base64', '', exe, '--b--', '',
  ].join('\r\n');
const verdicts = (): unknown[] => daemon.lines.filter((l) => l.event === 'message').map((l) => l.verdict);

describe('milterkit milter (the daemon) behind a real Sendmail', () => {
  it('relays clean mail untouched, defangs a banned attachment, refuses message/partial; logs each message', async () => {
    const clean = 'From: a@example.com\r\nTo: alice@lab.test\r\nSubject: hello\r\nMessage-ID: <c1@example.com>\r\n\r\nJust text.\r\n';
    expect(await sendMessage(sendmail.port, clean)).toMatch(/^250 /);
    expect(await sendMessage(sendmail.port, dangerous('invoice'))).toMatch(/^250 /);
    const partial = 'From: a@example.com\r\nSubject: part 1\r\nContent-Type: message/partial; id="x"; number=1; total=2\r\n\r\nfragment\r\n';
    expect(await sendMessage(sendmail.port, partial)).toBe('550 5.7.1 Message refused: content not accepted by policy');

    const messages = (await waitForRelayed(2)).map((m) => parseMessage(m));
    const first = messages.find((m) => m.headers.get('subject') === 'hello');
    const second = messages.find((m) => m.headers.get('subject') === 'invoice');
    expect(first?.headers.get('x-milterkit-defang')).toBeUndefined();
    expect(first?.root.text()).toBe('Just text.\r\n');
    expect(second?.headers.get('x-milterkit-defang')).toBe('changed; 2 replace banned-extension,executable-content');
    expect(second?.part('1')?.text()).toBe('See attached.');
    expect(second?.part('2')?.filename).toBe('WARNING.txt');
    expect(second?.toBuffer().toString('latin1')).not.toContain(exe);
    expect(verdicts()).toEqual(['clean', 'changed', 'reject']);
  });

  it('handles several messages on one SMTP connection, with raw 8-bit headers kept byte for byte', async () => {
    const before = relayed.length;
    const eightBit = Buffer.from('From: Jürgen <j@example.com>\r\nTo: alice@lab.test\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <k1@example.com>\r\nSubject: Grüße aus Köln — ünïcödé\r\n\r\nHallo, schöne Grüße.\r\n', 'utf8');
    const replies = await smtpDialogue(sendmail.port, [
      'EHLO client.test',
      'MAIL FROM:<j@example.com> BODY=8BITMIME', 'RCPT TO:<alice@lab.test>', 'DATA', Buffer.concat([eightBit, Buffer.from('.')]),
      'MAIL FROM:<a@example.com>', 'RCPT TO:<alice@lab.test>', 'DATA', `${dangerous('Rechnung für Sie')}.`,
      'QUIT',
    ]);
    expect(replies.filter((r) => /^250 2\.0\.0 \S+ Message accepted for delivery/.test(r))).toHaveLength(2);
    const delivered = (await waitForRelayed(before + 2)).slice(before);
    const plain = delivered.find((m) => m.includes(Buffer.from('Message-ID: <k1@example.com>')));
    const defangedBytes = delivered.find((m) => m !== plain);
    // Sendmail prepends its Received field and keeps the rest of the header block and the body as sent.
    const headerBlock = eightBit.subarray(0, eightBit.indexOf('\r\n\r\n') + 4);
    expect(plain?.includes(headerBlock.subarray(headerBlock.indexOf('Date:')))).toBe(true);
    expect(plain?.subarray(plain.indexOf('\r\n\r\n') + 4).toString('utf8')).toBe('Hallo, schöne Grüße.\r\n');
    expect(defangedBytes?.includes(Buffer.from('\r\nSubject: Rechnung für Sie\r\n', 'utf8'))).toBe(true);
    const defanged = parseMessage(defangedBytes as Buffer);
    expect(defanged.part('2')?.filename).toBe('WARNING.txt');
  });

  it('works over a unix socket too, wired as the README shows (S=unix:/path)', async () => {
    const before = relayed.length;
    const dir = mkdtempSync(join(tmpdir(), 'milterkit-sendmail-unix-'));
    const socketPath = join(dir, 'milter.sock');
    const unixDaemon = await startDaemon(['--listen', `unix:${socketPath}`, '--socket-mode', '660']);
    const viaUnix = await startSendmail({ milter: `unix:${socketPath}`, relayPort: (relay.server.address() as { port: number }).port });
    try {
      expect(await sendMessage(viaUnix.port, dangerous('over unix'))).toMatch(/^250 /);
      const delivered = parseMessage((await waitForRelayed(before + 1)).slice(before)[0] as Buffer);
      expect(delivered.headers.get('subject')).toBe('over unix');
      expect(delivered.part('2')?.filename).toBe('WARNING.txt');
      expect(unixDaemon.lines.filter((l) => l.event === 'message').map((l) => l.verdict)).toEqual(['changed']);
    } finally {
      await viaUnix.stop();
      expect(await unixDaemon.stop()).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('replaces a 3 MB body in several chunks and passes a clean one of the same size untouched', async () => {
    const before = relayed.length;
    const line = `${'0123456789abcdefghijklmnopqrstuvwxyz'.repeat(2)}\r\n`;
    const text = line.repeat(Math.ceil((3 * 1024 * 1024) / line.length));
    expect(await sendMessage(sendmail.port, dangerous('big one', text))).toMatch(/^250 /);
    expect(await sendMessage(sendmail.port, `From: a@example.com\r\nTo: alice@lab.test\r\nSubject: big clean\r\n\r\n${text}`)).toMatch(/^250 /);
    const delivered = (await waitForRelayed(before + 2, 60_000)).slice(before).map((m) => parseMessage(m));
    const big = delivered.find((m) => m.headers.get('subject') === 'big one');
    const clean = delivered.find((m) => m.headers.get('subject') === 'big clean');
    expect(big?.part('1')?.text()).toBe(text);
    expect(big?.part('2')?.filename).toBe('WARNING.txt');
    expect(clean?.root.text()).toBe(text);
    expect(clean?.headers.get('x-milterkit-defang')).toBeUndefined();
  });
});
