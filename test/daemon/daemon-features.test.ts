import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { startDaemonBehindPostfix } from '../support/daemon.js';
import { sendMessage, smtpDialogue } from '../support/smtp-client.js';

describe('milterkit milter --config: a pipeline (defang, then callback verification), two workers, health endpoint', () => {
  it('verifies senders at their MX (here Postfix itself), refuses invalid ones, and counts over both workers', async () => {
    // One Postfix is both the MTA in front of the daemon and the MX of the senders' domain, lab.test.
    const { daemon, postfix, socket, stop } = await startDaemonBehindPostfix(['alice', 'bob'], (mta) => ({
      workers: 2,
      health: '127.0.0.1:0',
      pipeline: [
        { plugin: 'defang' },
        { plugin: 'cbv', routes: { 'lab.test': '127.0.0.1' }, port: mta.port, allowLoopback: true, heloName: 'cbv.milterkit.test', cache: false, rejectInvalid: true, timeoutMs: 10_000 },
      ],
    }), { workers: 2 });
    try {
      const valid = 'From: bob@lab.test\r\nSubject: from a real sender\r\nX-Milterkit-CBV: valid; forged by the sender\r\n\r\nHi.\r\n';
      expect(await sendMessage(postfix.port, valid, { from: 'bob@lab.test' })).toMatch(/^250 /);
      expect(await sendMessage(postfix.port, 'From: nobody@lab.test\r\nSubject: from nobody\r\n\r\nHi.\r\n', { from: 'nobody@lab.test' })).toBe('550 5.1.7 Sender address rejected: undeliverable address');
      expect(await sendMessage(postfix.port, 'From: MAILER-DAEMON@lab.test\r\nSubject: a bounce\r\n\r\nBounced.\r\n', { from: '' })).toMatch(/^250 /);

      const [fromBob, bounce] = (await postfix.waitForDelivery('alice', 2, 15_000)).map((m) => parseMessage(m));
      expect(fromBob?.headers.getAll('x-milterkit-cbv')).toEqual([expect.stringMatching(/^valid; sender=<bob@lab\.test>; mx=127\.0\.0\.1; reply="250 2\.1\.5 Ok"$/)]);
      expect(bounce?.headers.get('x-milterkit-cbv')).toBeUndefined();
      const messages = daemon.lines.filter((l) => l.event === 'message');
      expect(messages.map((l) => [l.verdict, l.cbv])).toEqual(expect.arrayContaining([['changed', 'valid'], ['reject', 'invalid'], ['clean', 'skipped (null sender)']]));
      // Both workers listen on the one socket.
      expect(new Set(daemon.lines.filter((l) => l.event === 'listening').map((l) => l.worker)).size).toBe(2);

      const { port } = daemon.lines.find((l) => l.event === 'cluster')?.health as { port: number };
      const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as Record<string, unknown>;
      expect(health).toMatchObject({ status: 'ok', messages: 3, verdicts: { changed: 1, reject: 1, clean: 1 }, filterErrors: 0 });
    } finally {
      expect(await stop()).toBe(0);
    }
    expect(existsSync(socket)).toBe(false);
  }, 60_000);

  it('with refuseAtRcpt, refuses an invalid sender at RCPT, before the message, as reject_unverified_sender', async () => {
    const { daemon, postfix, stop } = await startDaemonBehindPostfix(['alice', 'bob'], (mta) => ({
      health: '127.0.0.1:0',
      pipeline: [{ plugin: 'cbv', routes: { 'lab.test': '127.0.0.1' }, port: mta.port, allowLoopback: true, heloName: 'cbv.milterkit.test', cache: false, rejectInvalid: true, refuseAtRcpt: true, timeoutMs: 10_000 }],
    }));
    try {
      const refused = await smtpDialogue(postfix.port, ['EHLO client.test', 'MAIL FROM:<nobody@lab.test>', 'RCPT TO:<alice@lab.test>', 'RCPT TO:<bob@lab.test>', 'QUIT']);
      expect(refused.slice(3, 5)).toEqual(['550 5.1.7 Sender address rejected: undeliverable address', '550 5.1.7 Sender address rejected: undeliverable address']);
      expect(await sendMessage(postfix.port, 'From: bob@lab.test\r\nSubject: hi\r\n\r\nHi.\r\n', { from: 'bob@lab.test' })).toMatch(/^250 /);
      const [delivered] = (await postfix.waitForDelivery('alice', 1, 15_000)).map((m) => parseMessage(m));
      expect(delivered?.headers.get('x-milterkit-cbv')).toMatch(/^valid; sender=<bob@lab\.test>/);
      expect(daemon.lines.filter((l) => l.event === 'recipient-refused').map((l) => [l.recipient, l.verdict, l.cbv])).toEqual([
        ['<alice@lab.test>', 'reject', 'invalid'],
        ['<bob@lab.test>', 'reject', 'invalid'],
      ]);
      const { port } = daemon.lines.find((l) => l.event === 'listening')?.health as { port: number };
      const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as Record<string, unknown>;
      expect(health).toMatchObject({ messages: 1, recipientsRefused: 2, verdicts: { changed: 1 } });
    } finally {
      expect(await stop()).toBe(0);
    }
  }, 60_000);
});
