import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defangPlugin, messageFilter, parseMessage, pipeline, runMilter } from '../../src/index.js';
import type { ChangeSet } from '../../src/milter/filter.js';
import type { MilterPlugin } from '../../src/daemon/pipeline.js';

/** Runs `test` with a fresh temporary directory, removed afterwards whatever happens. */
async function inTemporaryDirectory(prefix: string, test: (directory: string) => Promise<void>): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), prefix));
  try {
    await test(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

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

  it('a discard at RCPT drops the whole message, as Postfix does; a reject only that recipient', async () => {
    const clean = Buffer.from('From: a@example.com\r\nSubject: hi\r\n\r\nJust text.\r\n');
    const filter = () => ({ envRcpt: (rcpt: string) => (rcpt.includes('trap') ? ('discard' as const) : rcpt.includes('gone') ? ('reject' as const) : ('continue' as const)), eom: () => 'continue' as const });
    const discarded = await runMilter(filter, { message: clean, sender: 'a@example.com', recipients: ['trap@example.org', 'b@example.org'] });
    expect(discarded).toMatchObject({ verdict: 'discard', stage: 'envRcpt', delivered: undefined });
    const refused = await runMilter(filter, { message: clean, sender: 'a@example.com', recipients: ['gone@example.org', 'b@example.org'] });
    expect(refused).toMatchObject({ verdict: 'continue', recipients: ['b@example.org'] });
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
    await inTemporaryDirectory('milterkit-spill-', async (directory) => {
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
    });
  });
});

describe('messageFilter: one message at a time', () => {
  it('an end of message still running after its timeout keeps its own body and envelope; the next message keeps its own', async () => {
    await inTemporaryDirectory('milterkit-race-', async (directory) => {
      const seen: string[] = [];
      // Spilled to files (threshold 0), so that taking the body back waits on the file system.
      const factory = messageFilter(
        (message, envelope) => (seen.push(`${envelope.sender} ${envelope.queueId}: ${message.root.content().toString().trim()}`), { action: 'accept' }),
        { memoryThresholdBytes: 0, temporaryDirectory: directory },
      );
      let queueId = 'Q1';
      const hooks = factory({ macro: (name) => (name === 'i' ? queueId : undefined) });
      const recorded: string[] = [];
      const changes = new Proxy({} as ChangeSet, { get: (_, name) => (...args: unknown[]) => void recorded.push(`${String(name)} ${args.join(' ')}`) });
      const signal = new AbortController().signal;
      const header = Buffer.from(' hello');

      await hooks.envFrom?.('<first@example.com>', []);
      hooks.header?.('Subject', header);
      await hooks.body?.(Buffer.from('first body\r\n'));
      // The session has answered with the fallback at the timeout and the MTA goes on; this end of
      // message has only begun (it waits for its body file), and the next message arrives meanwhile.
      const first = hooks.eom?.(changes, signal);
      queueId = 'Q2';
      await hooks.envFrom?.('<second@example.com>', []);
      hooks.header?.('Subject', header);
      await hooks.body?.(Buffer.from('second body\r\n'));
      await first;
      await hooks.eom?.(changes, signal);
      expect(seen).toEqual(['<first@example.com> Q1: first body', '<second@example.com> Q2: second body']);
      expect(recorded).toEqual([]);
      expect(await readdir(directory)).toEqual([]);
    });
  });
});

describe('messageFilter: header edits', () => {
  it('a header set to an empty value stays, blank; a removed one goes', async () => {
    const message = Buffer.from('From: a@example.com\r\nX-Tag: old\r\nX-Gone: yes\r\nSubject: hi\r\n\r\nText.\r\n');
    const edit = messageFilter((parsed) => {
      parsed.headers.set('X-Tag', '');
      parsed.headers.remove('X-Gone');
      return { action: 'accept' };
    });
    for (const leadingSpace of [true, false]) {
      // Without HDR_LEADSPC (older Postfix and Sendmail) the empty value must not turn into a delete either.
      const result = await runMilter(edit, { message, sender: 'a@example.com', recipients: ['b@example.org'], offer: leadingSpace ? undefined : { protocol: 0x1fffff & ~0x100000 } });
      const delivered = parseMessage(result.delivered ?? Buffer.alloc(0));
      expect(delivered.headers.get('x-tag')?.trim()).toBe('');
      expect(delivered.headers.get('x-gone')).toBeUndefined();
    }
  });
});

describe('messageFilter: maxMessageBytes', () => {
  const message = Buffer.from(`From: a@example.com\r\nSubject: big\r\n\r\n${'A line of text to make the body long enough.\r\n'.repeat(100)}`);
  const input = { message, sender: 'a@example.com', recipients: ['b@example.org'] };

  it('refuses a message over the limit without keeping or parsing it, and logs it; one under passes', async () => {
    const log: Record<string, unknown>[] = [];
    let checked = 0;
    const counting: MilterPlugin = { name: 'count', check: () => (checked++, { action: 'accept' }) };
    const filter = (maxMessageBytes: number, oversizeAction?: 'accept') => messageFilter(pipeline([counting], (f) => log.push(f)), { maxMessageBytes, oversizeAction });

    const refused = await runMilter(filter(1000), input);
    expect(refused).toMatchObject({ verdict: 'reject', reply: '552 5.3.4 Message too big for the content filter' });
    expect(checked).toBe(0);
    // Header and body bytes: all of the message but the blank line between them.
    expect(log).toEqual([expect.objectContaining({ verdict: 'reject', oversize: message.length - 2 })]);

    const passed = await runMilter(filter(1000, 'accept'), input);
    expect(passed.verdict).toBe('continue');
    expect(passed.delivered?.equals(message)).toBe(true);
    expect(checked).toBe(0);
    expect(log[1]).toMatchObject({ verdict: 'unfiltered' });

    const fits = await runMilter(filter(message.length + 100), input);
    expect(fits.delivered?.equals(message)).toBe(true);
    expect(checked).toBe(1);
  });
});

describe('messageFilter: where added headers go', () => {
  it('fields prepended by a transform go on top, in their order (INSHEADER 0); others at the end', async () => {
    const message = Buffer.from('From: a@example.com\r\nSubject: hi\r\n\r\nText.\r\n');
    const filter = messageFilter((parsed) => {
      parsed.headers.add('X-Second', 'b', { prepend: true });
      parsed.headers.add('Authentication-Results', 'mx.example.org; spf=pass', { prepend: true });
      parsed.headers.add('X-Last', 'z');
      return { action: 'accept' };
    });
    const result = await runMilter(filter, { message, sender: 'a@example.com', recipients: ['b@example.org'] });
    const names = (result.delivered ?? Buffer.alloc(0)).toString('latin1').split('\r\n\r\n')[0]?.split('\r\n').map((line) => line.split(':')[0]);
    expect(names).toEqual(['Authentication-Results', 'X-Second', 'From', 'Subject', 'X-Last']);
  });
});

describe('messageFilter: header edits in place and on top', () => {
  const run = async (source: string, edit: (headers: import('../../src/mime/header-list.js').HeaderList) => void) => {
    const filter = messageFilter((parsed) => (edit(parsed.headers), { action: 'accept' }));
    const result = await runMilter(filter, { message: Buffer.from(source), sender: 'a@example.com', recipients: ['b@example.org'] });
    return (result.delivered ?? Buffer.alloc(0)).toString('latin1').split('\r\n\r\n')[0]?.split('\r\n');
  };

  it('a forged Authentication-Results removed and a new one prepended: the new one on top, the forged one gone', async () => {
    const source = 'Received: from relay1\r\nAuthentication-Results: forged; dkim=pass\r\nReceived: from relay2\r\nSubject: hi\r\n\r\nText.\r\n';
    expect(await run(source, (h) => (h.remove('Authentication-Results'), h.add('Authentication-Results', 'mx.example.org; dkim=fail', { prepend: true })))).toEqual([
      'Authentication-Results: mx.example.org; dkim=fail', 'Received: from relay1', 'Received: from relay2', 'Subject: hi',
    ]);
  });

  it('a field set in place stays in place; one prepended above it goes on top, even when no original is left untouched', async () => {
    expect(await run('Subject: hi\r\n\r\nText.\r\n', (h) => (h.set('Subject', 'new'), h.add('X-Top', '1', { prepend: true })))).toEqual(['X-Top: 1', 'Subject: new']);
    expect(await run('From: a@example.com\r\nSubject: hi\r\n\r\nText.\r\n', (h) => h.set('Subject', 'new'))).toEqual(['From: a@example.com', 'Subject: new']);
  });
});
