import { afterEach, describe, expect, it } from 'vitest';
import { encodeFrame, FrameReader, type Frame } from '../../src/milter/codec.js';
import { messageFilter } from '../../src/milter/message-adapter.js';
import { pipeline } from '../../src/daemon/pipeline.js';
import { cbvPlugin } from '../../src/daemon/plugins/cbv.js';
import { Command } from '../../src/milter/protocol.js';
import { MilterSession } from '../../src/milter/session.js';
import { fakeResolver, scriptedServer, type ScriptedServer } from '../cbv/scripted-smtp.js';

const servers: ScriptedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const z = (...parts: string[]): Buffer => Buffer.from(parts.join(''), 'latin1');
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const frame = (data: Buffer): Frame => new FrameReader(1 << 20).push(data)[0] as Frame;

/** Resolves once `condition` holds, polling; rejects after `timeoutMs` (a bound, not a measurement). */
async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('cbv plugin in a milter session', () => {
  it('starts the probe at the first accepted RCPT, before the message arrives, and uses its answer at end of message', async () => {
    const mx = await scriptedServer();
    servers.push(mx);
    const plugin = cbvPlugin({
      resolver: fakeResolver({ 'example.test': { mx: [{ exchange: 'mx.example.test', priority: 10 }], a: { 'mx.example.test': ['127.0.0.1'] } } }),
      port: mx.port,
      allowLoopback: true,
      heloName: 'verifier.milterkit.test',
      // No cache: one probe per transaction all the same (the plugin keeps it with the envelope).
      cache: false,
      maxSessionsPerMinutePerDomain: 100_000,
    });
    const sent: Buffer[] = [];
    const session = new MilterSession(messageFilter(pipeline([plugin], () => {})), { fallback: 'tempfail', hookTimeoutMs: 5000, eomTimeoutMs: 5000, log: () => {} }, (frames) => sent.push(...frames));
    await session.handle(frame(encodeFrame(Command.OPTNEG, Buffer.concat([u32(6), u32(0x1ff), u32(0x1fffff)]))));
    await session.handle(frame(encodeFrame(Command.MAIL, z('<alice@example.test>\0'))));
    await session.handle(frame(encodeFrame(Command.RCPT, z('<bob@example.org>\0'))));
    // Nothing of the message has been sent yet, and the MX is already asked.
    await until(() => mx.sessions[0]?.includes('RCPT TO:<alice@example.test>') === true, 'the probe at the first RCPT');
    for (const data of [encodeFrame(Command.RCPT, z('<carol@example.org>\0')), encodeFrame(Command.HEADER, z('Subject\0hello\0')), encodeFrame(Command.EOH), encodeFrame(Command.BODY, z('text\r\n')), encodeFrame(Command.BODYEOB)]) {
      await session.handle(frame(data));
    }
    const replies = new FrameReader(1 << 20).push(Buffer.concat(sent));
    // Postfix's offer includes HDR_LEADSPC: the value goes out with its leading space.
    const added = replies.find((r) => r.command === 'h'.charCodeAt(0));
    // Folded as it will be written (lines joined by LF, as the MTA wants them).
    expect(added?.data.toString('latin1').replace(/\n /g, ' ')).toMatch(/^X-Milterkit-CBV\0 valid; sender=<alice@example\.test>; mx=mx\.example\.test; reply="250 2\.0\.0 ok"\0$/);
    // One probe for the message: end of message took the early probe's answer.
    await mx.ended();
    expect(mx.sessions).toHaveLength(1);
  });

  it('meets a failing cache at end of message, as the fallback, without harm to the process', async () => {
    const broken = { get: () => Promise.reject(new Error('cache down')), set: () => Promise.reject(new Error('cache down')) };
    const plugin = cbvPlugin({ resolver: fakeResolver({}), cache: broken, allowLoopback: true });
    const sent: Buffer[] = [];
    const log: string[] = [];
    const session = new MilterSession(messageFilter(pipeline([plugin], () => {})), { fallback: 'tempfail', hookTimeoutMs: 5000, eomTimeoutMs: 5000, log: (event) => log.push(event) }, (frames) => sent.push(...frames));
    const frames = [encodeFrame(Command.OPTNEG, Buffer.concat([u32(6), u32(0x1ff), u32(0x1fffff)])), encodeFrame(Command.MAIL, z('<alice@example.test>\0')), encodeFrame(Command.RCPT, z('<bob@example.org>\0')), encodeFrame(Command.EOH), encodeFrame(Command.BODYEOB)];
    for (const data of frames) {
      await session.handle(frame(data));
      // A client taking its time: the early probe fails before end of message looks at it, and that
      // failure must not be left unhandled (vitest fails a run on an unhandled rejection).
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(new FrameReader(1 << 20).push(Buffer.concat(sent)).at(-1)?.command).toBe('t'.charCodeAt(0));
    expect(log).toEqual(['filter-error']);
  });

  it('with refuseAtRcpt, a probe slower than rcptWaitMs lets the RCPT through; the refusal comes after the message', async () => {
    // The MX says "no such user", but only after 600 ms.
    const mx = await scriptedServer({ reply: (line) => (line.startsWith('RCPT TO:<alice@') ? { delayMs: 600, reply: '550 5.1.1 no such user' } : undefined) });
    servers.push(mx);
    const plugin = cbvPlugin({
      resolver: fakeResolver({ 'example.test': { mx: [{ exchange: 'mx.example.test', priority: 10 }], a: { 'mx.example.test': ['127.0.0.1'] } } }),
      port: mx.port,
      allowLoopback: true,
      cache: false,
      rejectInvalid: true,
      refuseAtRcpt: true,
      rcptWaitMs: 100,
      maxSessionsPerMinutePerDomain: 100_000,
    });
    const sent: Buffer[] = [];
    const session = new MilterSession(messageFilter(pipeline([plugin], () => {})), { fallback: 'tempfail', hookTimeoutMs: 5000, eomTimeoutMs: 5000, log: () => {} }, (frames) => sent.push(...frames));
    const replies = (): string[] => new FrameReader(1 << 20).push(Buffer.concat(sent.splice(0))).map((r) => String.fromCharCode(r.command) + r.data.toString('latin1').replace(/\0/g, ''));
    await session.handle(frame(encodeFrame(Command.OPTNEG, Buffer.concat([u32(6), u32(0x1ff), u32(0x1fffff)]))));
    await session.handle(frame(encodeFrame(Command.MAIL, z('<alice@example.test>\0'))));
    const started = Date.now();
    await session.handle(frame(encodeFrame(Command.RCPT, z('<bob@example.org>\0'))));
    expect(Date.now() - started).toBeLessThan(500);
    expect(replies().slice(1)).toEqual(['c']);
    for (const data of [encodeFrame(Command.HEADER, z('Subject\0hello\0')), encodeFrame(Command.EOH), encodeFrame(Command.BODY, z('text\r\n')), encodeFrame(Command.BODYEOB)]) await session.handle(frame(data));
    expect(replies().at(-1)).toBe('y550 5.1.7 Sender address rejected: undeliverable address');
  });
});
