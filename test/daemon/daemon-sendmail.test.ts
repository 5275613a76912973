import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { startDaemon, type Daemon } from '../support/daemon.js';
import { freePort } from '../support/free-port.js';
import { startSendmail, type SendmailInstance } from '../support/sendmail.js';
import { sendMessage } from '../support/smtp-client.js';
import { bigText, dangerousMessage, EIGHT_BIT_MESSAGE, expectCleanAndDefanged, sendCleanDangerousPartial, sendTwoOnOneConnection } from '../support/test-messages.js';

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

const verdicts = (): unknown[] => daemon.lines.filter((l) => l.event === 'message').map((l) => l.verdict);

describe('milterkit milter (the daemon) behind a real Sendmail', () => {
  it('relays clean mail untouched, defangs a banned attachment, refuses message/partial; logs each message', async () => {
    await sendCleanDangerousPartial(sendmail.port);

    const messages = (await waitForRelayed(2)).map((m) => parseMessage(m));
    // Sendmail relays with CRLF line ends; the two arrive in either order.
    expectCleanAndDefanged(messages.find((m) => m.headers.get('subject') === 'hello'), messages.find((m) => m.headers.get('subject') === 'invoice'), '\r\n');
    expect(verdicts()).toEqual(['clean', 'changed', 'reject']);
    // The macro lists were honoured: the client's address came with MAIL FROM (no CONNECT event), the queue ID at end of message.
    expect(daemon.lines.filter((l) => l.event === 'message').map((l) => [l.client, typeof l.queueId])).toEqual(Array(3).fill(['127.0.0.1', 'string']));
  });

  it('handles several messages on one SMTP connection, with raw 8-bit headers kept byte for byte', async () => {
    const before = relayed.length;
    const eightBit = EIGHT_BIT_MESSAGE;
    const replies = await sendTwoOnOneConnection(sendmail.port);
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
      expect(await sendMessage(viaUnix.port, dangerousMessage('over unix'))).toMatch(/^250 /);
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
    const text = bigText(3 * 1024 * 1024);
    expect(await sendMessage(sendmail.port, dangerousMessage('big one', { text }))).toMatch(/^250 /);
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
