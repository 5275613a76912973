import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import customPlugin from '../../examples/custom-milter.js';
import { defangPlugin, messageFilter, parseMessage, pipeline, runMilter } from '../../src/index.js';
import { startDaemonBehindPostfix } from '../support/daemon.js';
import { sendMessage } from '../support/smtp-client.js';

const message = (subject: string) => Buffer.from(`From: a@example.com\r\nTo: b@example.org\r\nSubject: ${subject}\r\n\r\nHello\r\n`);
const filter = messageFilter(pipeline([defangPlugin(), customPlugin({})], () => {}));

describe('examples/custom-milter with the test harness', () => {
  it('adds its header to ordinary mail, after defang', async () => {
    const result = await runMilter(filter, { message: message('hi'), sender: 'a@example.com', recipients: ['b@example.org'], macros: { E: { i: 'ABC123' } } });
    expect(result.verdict).toBe('continue');
    const delivered = parseMessage(result.delivered ?? Buffer.alloc(0));
    expect(delivered.headers.get('x-scanned-by')).toBe('custom-milter (queue ABC123)');
    expect(delivered.headers.get('subject')).toBe('hi');
    expect(delivered.root.text()).toBe('Hello\r\n');
  });

  it('refuses what it should, with its reply', async () => {
    const result = await runMilter(filter, { message: message('Unsubscribe me from life'), sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(result).toMatchObject({ verdict: 'reject', stage: 'eom', reply: '550 5.7.1 We do not deliver that here', delivered: undefined });
  });
});

describe('examples/custom-milter plugged into the daemon behind a real Postfix', () => {
  it('runs from the config file, with its options, after defang', async () => {
    const { daemon, postfix, stop } = await startDaemonBehindPostfix(
      ['alice'],
      // A TypeScript module, through a shim that registers a loader in the pipeline thread.
      () => ({ pipeline: [{ plugin: 'defang' }, { plugin: 'module', path: resolve('test/support/typescript-plugin.mjs'), options: { module: '../../examples/custom-milter.ts', options: { refuseSubject: '^buy now' } } }] }),
    );
    try {
      expect(await sendMessage(postfix.port, 'From: a@example.com\r\nSubject: Buy now!\r\n\r\nDeal.\r\n')).toBe('550 5.7.1 We do not deliver that here');
      expect(await sendMessage(postfix.port, 'From: a@example.com\r\nSubject: unsubscribe me from life\r\n\r\nNot refused: the option changed the pattern.\r\n')).toMatch(/^250 /);
      const [delivered] = await postfix.waitForDelivery('alice', 1, 10_000);
      expect(parseMessage(delivered as Buffer).headers.get('x-scanned-by')).toMatch(/^custom-milter \(queue [0-9A-F]+\)$/);
      expect(daemon.lines.filter((l) => l.event === 'message').map((l) => [l.verdict, l.custom])).toEqual([['reject', 'refused'], ['changed', 'scanned']]);
    } finally {
      expect(await stop()).toBe(0);
    }
  });
});
