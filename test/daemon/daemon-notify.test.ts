import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { startDaemonBehindPostfix } from '../support/daemon.js';
import { sendMessage } from '../support/smtp-client.js';
import { dangerousMessage, EXE_BASE64 } from '../support/test-messages.js';

const withExe = (from: string): string => dangerousMessage('the invoice', { from, to: 'bob@lab.test' });

describe('milterkit milter: quarantine with a DSN notice to the sender (notify plugin)', () => {
  it('holds the message in Postfix and tells the sender by an RFC 3464 notice through the local MTA; never to a null sender', async () => {
    const { daemon, postfix, stop } = await startDaemonBehindPostfix(['alice', 'bob'], (mta) => ({
      pipeline: [
        { plugin: 'defang', policy: { actions: { 'banned-extension': 'quarantine', 'executable-content': 'quarantine' } } },
        { plugin: 'notify', reportingMta: 'mail.lab.test', relay: { host: '127.0.0.1', port: mta.port } },
      ],
    }));
    try {
      expect(await sendMessage(postfix.port, withExe('alice@lab.test'), { from: 'alice@lab.test', to: 'bob@lab.test' })).toMatch(/^250 /);
      expect(await sendMessage(postfix.port, withExe('MAILER-DAEMON@elsewhere.test'), { from: '', to: 'bob@lab.test' })).toMatch(/^250 /);

      const [notice] = await postfix.waitForDelivery('alice', 1, 15_000);
      const dsn = parseMessage(notice as Buffer);
      expect(dsn.root.contentType).toBe('multipart/report');
      expect(dsn.root.contentTypeParams.get('report-type')).toBe('delivery-status');
      expect(dsn.headers.get('subject')).toBe('Message rejected: dangerous content');
      expect(dsn.part('1')?.text()).toContain('quarantine; 2 quarantine banned-extension,executable-content');
      const status = dsn.part('2')?.text() ?? '';
      expect(status).toContain('Final-Recipient: rfc822; bob@lab.test');
      expect(status).toMatch(/Action: failed\r?\nStatus: 5\.7\.1/);
      // Headers only: the notice does not carry the content it reports.
      expect(dsn.part('3')?.contentType).toBe('text/rfc822-headers');
      expect(notice?.toString('latin1')).not.toContain(EXE_BASE64);

      // Both originals are held by Postfix, delivered to nobody; the bounce got no notice.
      expect(readdirSync(join(postfix.dir, 'queue', 'hold'), { recursive: true }).filter((f) => /^[0-9A-F]{6,}$/.test(String(f).split('/').pop() ?? ''))).toHaveLength(2);
      expect(await postfix.delivered('bob')).toEqual([]);
      const messages = daemon.lines.filter((l) => l.event === 'message' && l.verdict === 'quarantine');
      expect(messages.map((l) => l.notice)).toEqual(['queued', 'not sent (null-sender)']);
      await daemon.waitFor((l) => l.event === 'notice' && l.status === 'sent');
    } finally {
      expect(await stop()).toBe(0);
    }
  }, 60_000);
});
