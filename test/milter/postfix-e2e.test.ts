import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMessage, startMilterServer, type MilterServer } from '../../src/index.js';
import { startPostfix, type PostfixInstance } from '../support/postfix.js';
import { smtpDialogue } from '../support/smtp-client.js';

function message(subject: string, body: string): string {
  return `From: a@example.com\r\nTo: alice@lab.test\r\nSubject: ${subject}\r\n\r\n${body}\r\n.`;
}

let postfix: PostfixInstance;
let milter: MilterServer;
const log: unknown[] = [];

beforeAll(async () => {
  milter = await startMilterServer({
    listen: 'inet:0@127.0.0.1',
    log: (event, fields) => log.push({ event, ...fields }),
    filter: () => {
      let subject = '';
      const body: Buffer[] = [];
      return {
        // Per-message state starts at MAIL FROM: after end of message no abort comes (libmilter's rule).
        envFrom() {
          subject = '';
          body.length = 0;
        },
        header(name, value) {
          if (name.toLowerCase() === 'subject') subject = value.toString().trim();
        },
        body(chunk) {
          body.push(chunk);
        },
        eom(changes) {
          if (subject === 'reject me') return { reply: '550 5.7.1 Rejected by the test milter' };
          if (subject === 'crash') throw new Error('filter bug');
          changes.addHeader('X-Milterkit-Test', 'seen');
          changes.insertHeader(0, 'X-Milterkit-Top', 'on top');
          changes.replaceBody(Buffer.concat([...body, Buffer.from('-- footer\r\n')]));
          body.length = 0;
          return 'continue';
        },
        abort() {
          body.length = 0;
        },
      };
    },
  });
  postfix = await startPostfix({ users: ['alice'], milter: `inet:127.0.0.1:${(milter.address as { port: number }).port}` });
});

afterAll(async () => {
  await postfix?.stop();
  await milter?.close();
});

describe('milter behind a real Postfix', () => {
  it('adds a header and replaces the body of each message of one SMTP connection; rejects and tempfails as told', async () => {
    const replies = await smtpDialogue(postfix.port, [
      'EHLO client.test',
      'MAIL FROM:<a@example.com>', 'RCPT TO:<alice@lab.test>', 'DATA', message('first', 'one'),
      'MAIL FROM:<a@example.com>', 'RCPT TO:<alice@lab.test>', 'DATA', message('reject me', 'two'),
      'MAIL FROM:<a@example.com>', 'RCPT TO:<alice@lab.test>', 'DATA', message('crash', 'three'),
      'MAIL FROM:<a@example.com>', 'RCPT TO:<alice@lab.test>', 'DATA', message('second', 'four'),
      'QUIT',
    ]);
    expect(replies.filter((r) => /^(250 2\.0\.0 Ok: queued|5\d\d|4\d\d)/.test(r)).map((r) => r.slice(0, 9))).toEqual(['250 2.0.0', '550 5.7.1', '451 4.7.1', '250 2.0.0']);
    expect(replies).toContain('550 5.7.1 Rejected by the test milter');
    const delivered = await postfix.waitForDelivery('alice', 2, 10_000);
    const messages = delivered.map((m) => parseMessage(m));
    expect(messages.map((m) => m.headers.get('subject'))).toEqual(['first', 'second']);
    expect(messages.map((m) => m.headers.get('x-milterkit-test'))).toEqual(['seen', 'seen']);
    // INSHEADER 0 goes above the Received: field Postfix added (the milter never saw that one).
    for (const m of messages) {
      const names = [...m.root.headers].map((h) => h.key);
      expect(names.indexOf('x-milterkit-top')).toBeGreaterThanOrEqual(0);
      expect(names.indexOf('x-milterkit-top')).toBeLessThan(names.indexOf('received'));
    }
    expect(messages.map((m) => m.root.text())).toEqual(['one\n-- footer\n', 'four\n-- footer\n']);
    expect(log).toContainEqual(expect.objectContaining({ event: 'filter-error', stage: 'eom', error: 'filter bug', fallback: 'tempfail' }));
  });
});
