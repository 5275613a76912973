import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import customPlugin from '../../examples/custom-milter.js';
import { defangPlugin, messageFilter, parseMessage, pipeline, runMilter } from '../../src/index.js';
import { startDaemon } from '../support/daemon.js';
import { startPostfix } from '../support/postfix.js';
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
    const dir = mkdtempSync(join(tmpdir(), 'milterkit-custom-'));
    chmodSync(dir, 0o755);
    const config = join(dir, 'milterkit.json');
    writeFileSync(config, JSON.stringify({
      listen: `unix:${join(dir, 'milter.sock')}`,
      socketMode: '666',
      pipeline: [{ plugin: 'defang' }, { plugin: 'module', path: resolve('examples/custom-milter.ts'), options: { refuseSubject: '^buy now' } }],
    }));
    const daemon = await startDaemon(['--config', config], { typescriptModules: true });
    const postfix = await startPostfix({ users: ['alice'], milter: `unix:${join(dir, 'milter.sock')}` });
    try {
      expect(await sendMessage(postfix.port, 'From: a@example.com\r\nSubject: Buy now!\r\n\r\nDeal.\r\n')).toBe('550 5.7.1 We do not deliver that here');
      expect(await sendMessage(postfix.port, 'From: a@example.com\r\nSubject: unsubscribe me from life\r\n\r\nNot refused: the option changed the pattern.\r\n')).toMatch(/^250 /);
      const [delivered] = await postfix.waitForDelivery('alice', 1, 10_000);
      expect(parseMessage(delivered as Buffer).headers.get('x-scanned-by')).toMatch(/^custom-milter \(queue [0-9A-F]+\)$/);
      expect(daemon.lines.filter((l) => l.event === 'message').map((l) => [l.verdict, l.custom])).toEqual([['reject', 'refused'], ['changed', 'scanned']]);
    } finally {
      await postfix.stop();
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
