import { describe, expect, it } from 'vitest';
import { defangPlugin, messageFilter, parseMessage, pipeline, runMilter } from '../../src/index.js';

const exe = Buffer.from('MZ\x90\x00PE\x00\x00', 'latin1').toString('base64');
const attachment = Buffer.from(
  ['From: a@example.com', 'Subject: invoice', 'Content-Type: multipart/mixed; boundary="b"', '', '--b', 'Content-Type: text/plain', '', 'See attached.', '--b',
    'Content-Type: application/octet-stream; name="invoice.exe"', 'Content-Transfer-Encoding: base64', '', exe, '--b--', ''].join('\r\n'),
);

describe('runMilter: the daemon work without an MTA', () => {
  it('defangs through the adapter: one header added, the body replaced, nothing else', async () => {
    const log: unknown[] = [];
    const result = await runMilter(messageFilter(pipeline([defangPlugin({})], (f) => log.push(f))), { message: attachment, sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(result.verdict).toBe('continue');
    const delivered = parseMessage(result.delivered ?? Buffer.alloc(0));
    expect(delivered.headers.get('x-milterkit-defang')).toBe('changed; 2 replace banned-extension,executable-content');
    expect(delivered.part('2')?.filename).toBe('WARNING.txt');
    expect(delivered.headers.get('subject')).toBe('invoice');
    expect(log).toEqual([expect.objectContaining({ verdict: 'changed', sender: '<a@example.com>' })]);
  });

  it("gives the adapter's envelope the client and queue ID by the macros it asks for, as Postfix does", async () => {
    let envelope: unknown;
    const spy = { name: 'spy', check: (_message: unknown, seen: unknown) => ((envelope = structuredClone(seen)), { action: 'accept' as const }) };
    const clean = Buffer.from('From: a@example.com\r\nSubject: hi\r\n\r\nJust text.\r\n');
    await runMilter(messageFilter(pipeline([spy], () => {})), { message: clean, sender: 'a@example.com', recipients: ['b@example.org'], client: { address: '192.0.2.7' }, macros: { E: { i: '4XyZ1' } } });
    // No HELO name: Postfix has no macro for it.
    expect(envelope).toEqual({ sender: '<a@example.com>', recipients: ['<b@example.org>'], client: { address: '192.0.2.7', helo: undefined }, queueId: '4XyZ1' });
  });

  it('makes no modification at all to a clean message', async () => {
    const clean = Buffer.from('From: a@example.com\r\nSubject: hi\r\n\r\nJust text.\r\n');
    const result = await runMilter(messageFilter(pipeline([defangPlugin({})], () => {})), { message: clean, sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(result.delivered?.equals(clean)).toBe(true);
  });

  it('quarantines and rejects as the policy says', async () => {
    const quarantined = await runMilter(messageFilter(pipeline([defangPlugin({ actions: { 'banned-extension': 'quarantine' } })], () => {})), { message: attachment, sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(quarantined.quarantine).toMatch(/^quarantine;/);
    const rejected = await runMilter(messageFilter(pipeline([defangPlugin({ actions: { 'executable-content': 'reject' } })], () => {})), { message: attachment, sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(rejected).toMatchObject({ verdict: 'reject', reply: '550 5.7.1 Message refused: content not accepted by policy' });
  });
});

describe('messageFilter: large bodies', () => {
  const big = Buffer.concat([
    Buffer.from('From: a@example.com\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n'),
    Buffer.from('A line of ordinary text, repeated to make the body large.\r\n'.repeat(4000)),
    Buffer.from(`--b\r\nContent-Type: application/octet-stream; name="x.exe"\r\nContent-Transfer-Encoding: base64\r\n\r\n${exe}\r\n--b--\r\n`),
  ]);

  it('spills a body past memoryThresholdBytes to a private temporary file, filters it the same, and removes the file', async () => {
    const { mkdtemp, readdir, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const directory = await mkdtemp(join(tmpdir(), 'milterkit-spill-'));
    try {
      let filesDuringTransform: string[] = [];
      const spilling = messageFilter(
        async (message, envelope, signal) => {
          filesDuringTransform = await readdir(directory);
          return pipeline([defangPlugin({})], () => {})(message, envelope, signal);
        },
        { memoryThresholdBytes: 1024, temporaryDirectory: directory },
      );
      const input = { message: big, sender: 'a@example.com', recipients: ['b@example.org'] };
      const spilled = await runMilter(spilling, input);
      const inMemory = await runMilter(messageFilter(pipeline([defangPlugin({})], () => {})), input);
      expect(spilled.delivered?.equals(inMemory.delivered ?? Buffer.alloc(0))).toBe(true);
      expect(parseMessage(spilled.delivered ?? Buffer.alloc(0)).part('2')?.filename).toBe('WARNING.txt');
      // The file is gone by the time the transform runs (read once at end of message), and stays gone.
      expect(filesDuringTransform).toEqual([]);
      expect(await readdir(directory)).toEqual([]);

      const untouched = await runMilter(messageFilter(() => ({ action: 'accept' }), { memoryThresholdBytes: 1024, temporaryDirectory: directory }), input);
      expect(untouched.delivered?.equals(big)).toBe(true);
      expect(await readdir(directory)).toEqual([]);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
