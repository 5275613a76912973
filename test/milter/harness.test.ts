import { describe, expect, it } from 'vitest';
import { defangTransform, messageFilter, parseMessage, runMilter } from '../../src/index.js';

const exe = Buffer.from('MZ\x90\x00PE\x00\x00', 'latin1').toString('base64');
const attachment = Buffer.from(
  ['From: a@example.com', 'Subject: invoice', 'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'See attached.', '--b',
    'Content-Type: application/octet-stream; name="invoice.exe"', 'Content-Transfer-Encoding: base64', '', exe, '--b--', ''].join('\r\n'),
);

describe('runMilter: the daemon work without an MTA', () => {
  it('defangs through the adapter: one header added, the body replaced, nothing else', async () => {
    const log: unknown[] = [];
    const result = await runMilter(messageFilter(defangTransform({}, (f) => log.push(f))), { message: attachment, sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(result.verdict).toBe('continue');
    const delivered = parseMessage(result.delivered ?? Buffer.alloc(0));
    expect(delivered.headers.get('x-milterkit-defang')).toBe('changed; 2 replace banned-extension,executable-content');
    expect(delivered.part('2')?.filename).toBe('WARNING.txt');
    expect(delivered.headers.get('subject')).toBe('invoice');
    expect(log).toEqual([expect.objectContaining({ verdict: 'changed', sender: '<a@example.com>' })]);
  });

  it('makes no modification at all to a clean message', async () => {
    const clean = Buffer.from('From: a@example.com\r\nSubject: hi\r\n\r\nJust text.\r\n');
    const result = await runMilter(messageFilter(defangTransform({}, () => {})), { message: clean, sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(result.delivered?.equals(clean)).toBe(true);
  });

  it('quarantines and rejects as the policy says', async () => {
    const quarantined = await runMilter(messageFilter(defangTransform({ actions: { 'banned-extension': 'quarantine' } }, () => {})), { message: attachment, sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(quarantined.quarantine).toMatch(/^quarantine;/);
    const rejected = await runMilter(messageFilter(defangTransform({ actions: { 'executable-content': 'reject' } }, () => {})), { message: attachment, sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(rejected).toMatchObject({ verdict: 'reject', reply: '550 5.7.1 Message refused: content not accepted by policy' });
  });
});
