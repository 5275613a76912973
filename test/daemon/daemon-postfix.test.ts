import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { startPostfix, type PostfixInstance } from '../support/postfix.js';
import { sendMessage } from '../support/smtp-client.js';
import { bigText, dangerousMessage, EIGHT_BIT_MESSAGE, expectCleanAndDefanged, sendCleanDangerousPartial, sendTwoOnOneConnection } from '../support/test-messages.js';

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

/** Postfix's local delivery writes Maildir files with LF line ends. */
const asDelivered = (sent: Buffer): Buffer => Buffer.from(sent.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
const verdicts = (): unknown[] => daemon.lines.filter((l) => l.event === 'message').map((l) => l.verdict);

describe('milterkit milter (the daemon) behind a real Postfix', () => {
  it('delivers clean mail untouched, defangs a banned attachment, refuses message/partial; logs each message', async () => {
    await sendCleanDangerousPartial(postfix.port);

    const [first, second] = (await postfix.waitForDelivery('alice', 2, 10_000)).map((m) => parseMessage(m));
    expectCleanAndDefanged(first, second, '\n');
    expect(verdicts()).toEqual(['clean', 'changed', 'reject']);
    // The macro lists were honoured: the client's address came with MAIL FROM (no CONNECT event), the queue ID at end of message.
    expect(daemon.lines.filter((l) => l.event === 'message').map((l) => [l.client, typeof l.queueId])).toEqual(Array(3).fill(['127.0.0.1', 'string']));
  });

  it('handles several messages on one SMTP connection, with raw 8-bit headers kept byte for byte', async () => {
    const before = (await postfix.delivered('alice')).length;
    const eightBit = EIGHT_BIT_MESSAGE;
    const replies = await sendTwoOnOneConnection(postfix.port);
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
    expect(await sendMessage(postfix.port, dangerousMessage('big with attachment', { text: bigText(10 * 1024 * 1024).trimEnd() }))).toMatch(/^250 /);
    const delivered = (await postfix.waitForDelivery('alice', before + 2, 30_000)).slice(before);
    const expected = asDelivered(big);
    expect(delivered[0]?.subarray(delivered[0].length - expected.length).equals(expected)).toBe(true);
    const defanged = parseMessage(delivered[1] as Buffer);
    expect(defanged.part('1')?.content().length).toBeGreaterThan(10_000_000);
    expect(defanged.part('2')?.filename).toBe('WARNING.txt');
    expect(verdicts().slice(-2)).toEqual(['clean', 'changed']);
  }, 60_000);
});
