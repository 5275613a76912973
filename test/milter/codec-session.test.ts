import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeFrame, encodeResponse, FrameReader, MilterProtocolError, parseCommand, type MilterResponse } from '../../src/milter/codec.js';
import type { FilterFactory, MilterFilter } from '../../src/milter/filter.js';
import { Action, Command, Protocol } from '../../src/milter/protocol.js';
import { messageFilter } from '../../src/milter/message-adapter.js';
import type { MessageWork } from '../../src/milter/message-work.js';
import { runMilter } from '../../src/milter/harness.js';
import { pipeline, type MilterPlugin } from '../../src/daemon/pipeline.js';
import { MilterSession, type SessionOptions } from '../../src/milter/session.js';

const z = (...parts: (string | Buffer)[]): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

/** Postfix 3.x's offer: version 6, all actions, all protocol bits. */
const POSTFIX_OPTNEG = encodeFrame(Command.OPTNEG, z(u32(6), u32(0x1ff), u32(0x1fffff)));

/**
 * Runs frames through a session; returns the frames it sent back, decoded to [command, data]. A factory
 * instead of a filter gets the session's context (its macros).
 */
async function exchange(filter: MilterFilter | FilterFactory, frames: Buffer[], options: Partial<SessionOptions> = {}): Promise<{ replies: [string, Buffer][]; log: unknown[] }> {
  const sent: Buffer[] = [];
  const log: unknown[] = [];
  const session = new MilterSession(typeof filter === 'function' ? filter : () => filter, { fallback: 'tempfail', hookTimeoutMs: 200, eomTimeoutMs: 200, log: (e, f) => log.push({ event: e, ...f }), ...options }, (frames) => sent.push(...frames));
  const reader = new FrameReader(1 << 20);
  for (const frame of reader.push(Buffer.concat(frames))) await session.handle(frame);
  const out = new FrameReader(1 << 20).push(Buffer.concat(sent));
  return { replies: out.map((f) => [String.fromCharCode(f.command), f.data]), log };
}

describe('milter codec', () => {
  it('reassembles frames split anywhere, and refuses impossible lengths', () => {
    const body = Buffer.from(Array.from({ length: 40 }, (_, i) => i));
    const frames = [POSTFIX_OPTNEG, encodeFrame(Command.HELO, z('mx.test\0')), encodeFrame(Command.BODY, body), encodeFrame(Command.BODY), encodeFrame(Command.QUIT)];
    const all = Buffer.concat(frames);
    const expected = [[Command.OPTNEG, z(u32(6), u32(0x1ff), u32(0x1fffff)).toString('hex')], [Command.HELO, '6d782e7465737400'], [Command.BODY, body.toString('hex')], [Command.BODY, ''], [Command.QUIT, '']];
    for (let size = 1; size <= all.length; size++) {
      const reader = new FrameReader(1024);
      const got: [number, string][] = [];
      let continued = false;
      for (let i = 0; i < all.length; i += size) {
        for (const f of reader.push(all.subarray(i, i + size))) {
          // A BODY packet over several reads comes in pieces (views, not copies), the last not `continued`.
          expect(f.continued && f.command !== Command.BODY).toBeFalsy();
          if (continued) (got.at(-1) as [number, string])[1] += f.data.toString('hex');
          else got.push([f.command, f.data.toString('hex')]);
          continued = f.continued === true;
        }
      }
      expect(got).toEqual(expected);
    }
    // "post" from a log line on the socket: 0x706f7374 bytes.
    expect(() => new FrameReader(1 << 20).push(Buffer.from('postfix/smtpd'))).toThrow(MilterProtocolError);
    expect(() => new FrameReader(1 << 20).push(u32(0))).toThrow(/empty/);
  });

  it('parses CONNECT for inet, inet6 (with and without IPv6:), unix and unknown families', () => {
    const connect = (family: string, tail: Buffer) => parseCommand({ command: Command.CONNECT, data: z('host.test\0', family, tail) });
    expect(connect('4', z(u16(2525), '192.0.2.1\0'))).toEqual({ type: 'connect', hostname: 'host.test', family: 'inet', port: 2525, address: '192.0.2.1' });
    expect(connect('6', z(u16(25), 'IPv6:2001:db8::1\0'))).toMatchObject({ family: 'inet6', address: '2001:db8::1' });
    expect(connect('6', z(u16(25), '2001:db8::2\0'))).toMatchObject({ family: 'inet6', address: '2001:db8::2' });
    expect(connect('L', z(u16(0), '/run/x.sock\0'))).toMatchObject({ family: 'unix', address: '/run/x.sock' });
    expect(connect('U', Buffer.alloc(0))).toMatchObject({ family: 'unknown', port: undefined, address: undefined });
  });

  it('keeps header values as bytes, empty values and 8-bit ones included', () => {
    expect(parseCommand({ command: Command.HEADER, data: z('X-Empty\0\0') })).toEqual({ type: 'header', name: 'X-Empty', value: Buffer.alloc(0) });
    const latin = parseCommand({ command: Command.HEADER, data: z('Subject\0', Buffer.from(' Grüße', 'latin1'), '\0') });
    expect(latin.type === 'header' && latin.value.equals(Buffer.from(' Grüße', 'latin1'))).toBe(true);
  });

  it('encodes every response as libmilter does', () => {
    const cases: [MilterResponse, string][] = [
      [{ type: 'continue' }, '0000000163'],
      [{ type: 'addheader', name: 'X-A', value: 'b' }, `00000007${Buffer.from('hX-A\0b\0').toString('hex')}`],
      [{ type: 'chgheader', index: 2, name: 'X-A', value: '' }, `0000000a6d00000002${Buffer.from('X-A\0\0').toString('hex')}`],
      [{ type: 'replycode', reply: '550 5.7.1 no' }, `0000000e79${Buffer.from('550 5.7.1 no\0').toString('hex')}`],
    ];
    for (const [response, hex] of cases) expect(encodeResponse(response).toString('hex')).toBe(hex);
  });

  it('never throws anything but a protocol error on random input (fuzz)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.integer({ min: 0x20, max: 0x7e }), (bytes, command) => {
        try {
          for (const frame of new FrameReader(4096).push(Buffer.from(bytes))) parseCommand(frame);
          parseCommand({ command, data: Buffer.from(bytes) });
        } catch (err) {
          expect(err).toBeInstanceOf(MilterProtocolError);
        }
      }),
      { numRuns: 5000 },
    );
  });
});

describe('milter session', () => {
  it('negotiates away the events a filter has no hook for, and asks for header bytes verbatim', async () => {
    const { replies } = await exchange({ header() {}, eom() {} }, [POSTFIX_OPTNEG]);
    const [command, data] = replies[0] as [string, Buffer];
    expect(command).toBe('O');
    expect(data.readUInt32BE(0)).toBe(6);
    const protocol = data.readUInt32BE(8);
    for (const bit of [Protocol.NOCONNECT, Protocol.NOHELO, Protocol.NOMAIL, Protocol.NORCPT, Protocol.NOBODY, Protocol.NOEOH, Protocol.NODATA, Protocol.NOUNKNOWN]) expect(protocol & bit).toBe(bit);
    expect(protocol & Protocol.NOHDRS).toBe(0);
    expect(protocol & Protocol.HDR_LEADSPC).toBe(Protocol.HDR_LEADSPC);
    expect(data.readUInt32BE(4)).toBe(0x1ff & ~0x100);
  });

  it('does not reply to ABORT or MACRO, keeps connection data across ABORT, and reads macros by either spelling', async () => {
    const seen: string[] = [];
    let macro: ((n: string) => string | undefined) | undefined;
    const filter: MilterFilter = {
      connect: (info) => void seen.push(`connect ${info.address}`),
      envFrom: (sender) => void seen.push(`from ${sender} i=${macro?.('i')} auth=${macro?.('auth_authen')}`),
      abort: () => void seen.push('abort'),
    };
    const frames = [
      POSTFIX_OPTNEG,
      encodeFrame(Command.MACRO, z('C', 'j\0mx.test\0')),
      encodeFrame(Command.CONNECT, z('client.test\0', '4', u16(1234), '192.0.2.9\0')),
      encodeFrame(Command.MACRO, z('M', 'i\0ABC123\0{auth_authen}\0bob\0')),
      encodeFrame(Command.MAIL, z('<a@example.com>\0', 'SIZE=10\0')),
      encodeFrame(Command.ABORT),
      encodeFrame(Command.MACRO, z('M', '{mail_addr}\0x\0')),
      encodeFrame(Command.MAIL, z('<b@example.com>\0')),
      encodeFrame(Command.QUIT),
    ];
    const { replies } = await exchange((ctx) => ((macro = ctx.macro), filter), frames);
    expect(seen).toEqual(['connect 192.0.2.9', 'from <a@example.com> i=ABC123 auth=bob', 'abort', 'from <b@example.com> i=undefined auth=undefined', 'abort']);
    // OPTNEG, CONNECT, MAIL, MAIL: four replies; ABORT, MACRO and QUIT get none.
    expect(replies.map(([c]) => c)).toEqual(['O', 'c', 'c', 'c']);
  });

  it('a MAIL without ABORT before it (Sendmail, after a verdict at MAIL) ends the old message and keeps its own macros', async () => {
    const seen: string[] = [];
    let macro: ((n: string) => string | undefined) | undefined;
    const filter: MilterFilter = {
      envFrom: (sender) => (seen.push(`from ${sender} i=${macro?.('i')} auth=${macro?.('{auth_authen}')} rcpt=${macro?.('{rcpt_addr}')}`), sender.includes('bad') ? 'reject' : 'continue'),
      envRcpt: () => 'continue',
      abort: () => void seen.push('abort'),
    };
    const frames = [
      POSTFIX_OPTNEG,
      encodeFrame(Command.MACRO, z('M', 'i\0Q1\0{auth_authen}\0alice\0')),
      encodeFrame(Command.MAIL, z('<bad@example.com>\0')),
      encodeFrame(Command.MACRO, z('R', '{rcpt_addr}\0old@example.org\0')),
      encodeFrame(Command.RCPT, z('<old@example.org>\0')),
      encodeFrame(Command.MACRO, z('M', 'i\0Q2\0{auth_authen}\0bob\0')),
      encodeFrame(Command.MAIL, z('<good@example.com>\0')),
    ];
    const { replies } = await exchange((ctx) => ((macro = ctx.macro), filter), frames);
    // The old message's RCPT macros are gone with it; the new MAIL's own are there.
    expect(seen).toEqual(['from <bad@example.com> i=Q1 auth=alice rcpt=undefined', 'abort', 'from <good@example.com> i=Q2 auth=bob rcpt=undefined']);
    // MAIL rejected; the RCPT of the settled message answered without its hook; the new MAIL continued.
    expect(replies.map(([c]) => c)).toEqual(['O', 'r', 'c', 'c']);
  });

  it('sends end-of-message changes in a safe order, the body in contiguous chunks of at most 65535 bytes', async () => {
    const body = Buffer.alloc(150_000, 0x61);
    const filter: MilterFilter = {
      eom(changes) {
        changes.replaceBody(body);
        changes.addHeader('X-One', 'a\r\n\tb');
        changes.deleteHeader('X-Old', 1);
        changes.deleteHeader('X-Old', 3);
        changes.quarantine('held\r\nfor review');
        return 'accept';
      },
    };
    const { replies } = await exchange(filter, [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.BODYEOB)]);
    expect(replies.map(([c]) => c).join('')).toBe('Ocmmhqbbba');
    expect(replies.filter(([c]) => c === 'm').map(([, d]) => d.readUInt32BE(0))).toEqual([3, 1]);
    // HDR_LEADSPC was negotiated: the engine adds the space the MTA no longer adds; CR never goes out.
    expect((replies.find(([c]) => c === 'h') as [string, Buffer])[1].toString('latin1')).toBe('X-One\0 a\n\tb\0');
    expect((replies.find(([c]) => c === 'q') as [string, Buffer])[1].toString('latin1')).toBe('held for review\0');
    expect(replies.filter(([c]) => c === 'b').map(([, d]) => d.length)).toEqual([65535, 65535, 18930]);
  });

  it('replaceBody appends, as smfi_replacebody does: a body written in pieces arrives whole, and an empty one still replaces', async () => {
    const pieces: MilterFilter = {
      eom(changes) {
        // A filter ported from pymilter writes the new body 8 KiB at a time.
        for (let i = 0; i < 3; i++) changes.replaceBody(Buffer.alloc(8192, 0x61 + i));
        return 'continue';
      },
    };
    const { replies } = await exchange(pieces, [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.BODYEOB)]);
    const body = Buffer.concat(replies.filter(([c]) => c === 'b').map(([, d]) => d));
    expect(body.toString('latin1')).toBe('a'.repeat(8192) + 'b'.repeat(8192) + 'c'.repeat(8192));
    const emptied = await exchange({ eom: (changes) => void changes.replaceBody(Buffer.alloc(0)) }, [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.BODYEOB)]);
    // MAIL is answered (the filter has no hook for it, but the test sends it anyway); then an empty body, then the verdict.
    expect(emptied.replies.map(([c, d]) => `${c}${d.length}`)).toEqual(['O12', 'c0', 'b0', 'c0']);
    // Through the harness too: what the MTA would deliver.
    const delivered = await runMilter(() => pieces, { message: Buffer.from('Subject: x\r\n\r\nold\r\n'), sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(delivered.delivered?.toString('latin1')).toBe(`Subject: x\r\n\r\n${'a'.repeat(8192)}${'b'.repeat(8192)}${'c'.repeat(8192)}`);
  });

  it('turns an exception or a timeout into the fallback, sends no changes, and logs it', async () => {
    const crash: MilterFilter = {
      eom(changes) {
        changes.addHeader('X-Half', 'done');
        throw new Error('boom');
      },
    };
    const crashed = await exchange(crash, [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.BODYEOB)]);
    expect(crashed.replies.map(([c]) => c).join('')).toBe('Oct');
    expect(crashed.log).toEqual([{ event: 'filter-error', stage: 'eom', error: 'boom', fallback: 'tempfail' }]);
    const slow: MilterFilter = { envFrom: () => new Promise(() => {}) };
    const timedOut = await exchange(slow, [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0'))], { fallback: 'reject' });
    expect(timedOut.replies.map(([c]) => c).join('')).toBe('Or');
  });

  it('keeps the MTA waiting with PROGRESS while an end of message works, and only then', async () => {
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    const filter: MilterFilter = {
      envFrom: async () => (await sleep(120), 'continue' as const),
      eom: async (changes) => (await sleep(130), changes.addHeader('X-Checked', 'yes'), 'continue' as const),
    };
    const frames = [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.BODYEOB)];
    const { replies } = await exchange(filter, frames, { progressIntervalMs: 50 });
    // Two or three PROGRESS at end of message (at 50 and 100 ms, maybe 150), none at MAIL (Sendmail takes it only at EOM).
    expect(replies.map(([c]) => c).join('')).toMatch(/^Ocp{2,3}hc$/);
    const quiet = await exchange(filter, frames, { progressIntervalMs: 0 });
    expect(quiet.replies.map(([c]) => c).join('')).toBe('Ochc');
  });

  it('a recipient check that answers after its timeout does not make that recipient one of the message', async () => {
    const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
    let recipients: string[] = [];
    const transform = Object.assign(
      async (_message: unknown, envelope: { recipients: string[] }) => {
        await sleep(150); // long enough for the late check below to come back
        recipients = [...envelope.recipients];
        return { action: 'accept' as const };
      },
      { recipient: async (_envelope: unknown, recipient: string) => (recipient.includes('late') ? sleep(250).then(() => undefined) : undefined) },
    );
    const frames = [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.RCPT, z('<late@d>\0')), encodeFrame(Command.RCPT, z('<ok@d>\0')), encodeFrame(Command.HEADER, z('Subject\0hi\0')), encodeFrame(Command.BODY, z('text\r\n')), encodeFrame(Command.BODYEOB)];
    const { replies, log } = await exchange(messageFilter(transform)({ macro: () => undefined }), frames);
    // The late recipient got the fallback; the message went on with the other.
    expect(replies.map(([c]) => c).join('')).toBe('Otcc');
    expect(log).toEqual([{ event: 'filter-error', stage: 'envRcpt', error: 'envRcpt took longer than 200 ms', fallback: 'tempfail' }]);
    expect(recipients).toEqual(['<ok@d>']);
  });

  it('aborts the end-of-message signal at the timeout: the pipeline starts no plugin after it', async () => {
    let seen: AbortSignal | undefined;
    const ran: string[] = [];
    const slow: MilterPlugin = {
      name: 'slow',
      async check(_message, _envelope, state) {
        seen = state.signal;
        await new Promise((resolve) => setTimeout(resolve, 300));
        ran.push('slow');
        return { action: 'accept' };
      },
    };
    const next: MilterPlugin = { name: 'next', check: () => (ran.push('next'), { action: 'accept' }) };
    const logged: unknown[] = [];
    const filter = messageFilter(pipeline([slow, next], (fields) => logged.push(fields)))({ macro: () => undefined });
    const frames = [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.RCPT, z('<c@d>\0')), encodeFrame(Command.HEADER, z('Subject\0hi\0')), encodeFrame(Command.EOH), encodeFrame(Command.BODY, z('text\r\n')), encodeFrame(Command.BODYEOB)];
    const { replies, log } = await exchange(filter, frames);
    expect(replies.at(-1)?.[0]).toBe('t');
    expect(log).toEqual([{ event: 'filter-error', stage: 'eom', error: 'eom took longer than 200 ms', fallback: 'tempfail' }]);
    expect(seen?.aborted).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(ran).toEqual(['slow']);
    // The MTA has the fallback: no verdict is logged for the message.
    expect(logged).toEqual([]);
  });

  it('aborts the signal of a running hook when the MTA closes the connection', async () => {
    let seen: AbortSignal | undefined;
    const filter: MilterFilter = {
      eom: (_changes, signal) =>
        new Promise((resolve) => {
          seen = signal;
          signal.addEventListener('abort', () => resolve('tempfail'));
        }),
    };
    const session = new MilterSession(() => filter, { fallback: 'tempfail', hookTimeoutMs: 5000, eomTimeoutMs: 5000, log: () => {} }, () => {});
    for (const frame of new FrameReader(1 << 20).push(Buffer.concat([POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0'))]))) await session.handle(frame);
    const [eom] = new FrameReader(1 << 20).push(encodeFrame(Command.BODYEOB));
    const running = session.handle(eom as NonNullable<typeof eom>);
    await new Promise((resolve) => setImmediate(resolve));
    session.disconnected();
    await running;
    expect(seen?.aborted).toBe(true);
    expect((seen?.reason as Error).message).toBe('the MTA closed the connection');
  });

  it('gives an end of message still queued when the MTA went away an aborted signal', async () => {
    let seen: AbortSignal | undefined;
    const filter: MilterFilter = { eom: (_changes, signal) => ((seen = signal), Promise.resolve('continue')) };
    const session = new MilterSession(() => filter, { fallback: 'tempfail', hookTimeoutMs: 5000, eomTimeoutMs: 5000, log: () => {} }, () => {});
    for (const frame of new FrameReader(1 << 20).push(Buffer.concat([POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0'))]))) await session.handle(frame);
    session.disconnected();
    const [eom] = new FrameReader(1 << 20).push(encodeFrame(Command.BODYEOB));
    await session.handle(eom as NonNullable<typeof eom>);
    expect(seen?.aborted).toBe(true);
  });

  it('maps custom replies to REPLYCODE, doubling % for Sendmail, and refuses malformed ones', async () => {
    const reply = await exchange({ envRcpt: () => ({ reply: '550 5.1.1 100% unknown, 50%% known' }) }, [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.RCPT, z('<c@d>\0'))]);
    expect(reply.replies[2]?.[0]).toBe('y');
    // Every % is text: each is doubled (a "%%" given by the filter stays two percent signs for the client).
    expect(reply.replies[2]?.[1].toString('latin1')).toBe('550 5.1.1 100%% unknown, 50%%%% known\0');
    const bad = await exchange({ envRcpt: () => ({ reply: '250 fine\r\nBcc: x' }) }, [POSTFIX_OPTNEG, encodeFrame(Command.RCPT, z('<c@d>\0'))]);
    expect(bad.replies[1]?.[0]).toBe('t');
  });
});

describe('milter session: no-reply stages (SMFIP_NR_*)', () => {
  const message = [
    POSTFIX_OPTNEG,
    encodeFrame(Command.MAIL, z('<a@example.com>\0')),
    encodeFrame(Command.RCPT, z('<b@example.org>\0')),
    encodeFrame(Command.RCPT, z('<c@example.org>\0')),
    encodeFrame(Command.HEADER, z('Subject\0 hi\0')),
    encodeFrame(Command.HEADER, z('X-Two\0 2\0')),
    encodeFrame(Command.BODY, z('text\r\n')),
    encodeFrame(Command.BODYEOB),
  ];

  it('negotiates the NR bits a filter asks for and never answers those stages', async () => {
    const seen: string[] = [];
    const filter: MilterFilter = {
      noReply: ['envFrom', 'envRcpt', 'header', 'body'],
      envFrom: () => void seen.push('mail'),
      envRcpt: () => void seen.push('rcpt'),
      header: (name) => void seen.push(name),
      body: () => void seen.push('body'),
      eom: () => 'continue',
    };
    const { replies } = await exchange(filter, message);
    const negotiated = replies[0]?.[1].readUInt32BE(8) ?? 0;
    expect(negotiated & (Protocol.NR_MAIL | Protocol.NR_RCPT | Protocol.NR_HDR | Protocol.NR_BODY)).toBe(Protocol.NR_MAIL | Protocol.NR_RCPT | Protocol.NR_HDR | Protocol.NR_BODY);
    expect(negotiated & Protocol.NR_CONN).toBe(0);
    // One answer after the negotiation: the end of message's.
    expect(replies.map(([c]) => c)).toEqual(['O', 'c']);
    expect(seen).toEqual(['mail', 'rcpt', 'rcpt', 'Subject', 'X-Two', 'body']);
  });

  it('asks only for the changes a filter opts into, and refuses any other at end of message (the fallback)', async () => {
    const headerOnly: MilterFilter = { actions: ['addHeader', 'insertHeader'], eom: (changes) => void changes.replaceBody(Buffer.from('x')) };
    const { replies, log } = await exchange(headerOnly, message);
    expect(replies[0]?.[1].readUInt32BE(4)).toBe(Action.ADDHDRS);
    expect(replies.at(-1)?.[0]).toBe('t');
    expect(log).toContainEqual(expect.objectContaining({ event: 'filter-error', stage: 'eom', error: 'replaceBody was not negotiated with the MTA' }));
    // Without the list: every change the MTA offers.
    const all = await exchange({ eom: () => 'continue' }, message);
    expect(all.replies[0]?.[1].readUInt32BE(4)).toBe(0x1ff & ~Action.SETSYMLIST);
  });

  it('asks for the macro lists a filter names (smfi_setsymlist), only of an MTA that offers to honour them', async () => {
    const filter: MilterFilter = { macros: { envFrom: ['{client_addr}', 'i'], eom: ['i'] }, envFrom: () => 'continue' };
    const offered = (await exchange(filter, [POSTFIX_OPTNEG])).replies[0]?.[1] as Buffer;
    expect(offered.readUInt32BE(4) & Action.SETSYMLIST).toBe(Action.SETSYMLIST);
    // SMFIM_ENVFROM is 2, SMFIM_EOM 5.
    expect(offered.subarray(12)).toEqual(z(u32(2), '{client_addr} i\0', u32(5), 'i\0'));
    const withoutSymlist = encodeFrame(Command.OPTNEG, z(u32(6), u32(0xff), u32(0x1fffff)));
    const refused = (await exchange(filter, [withoutSymlist])).replies[0]?.[1] as Buffer;
    expect(refused.length).toBe(12);
    expect(refused.readUInt32BE(4) & Action.SETSYMLIST).toBe(0);
  });

  it('a no-reply hook that throws gives the fallback at the next answered stage; later hooks and eom do not run', async () => {
    const seen: string[] = [];
    const filter: MilterFilter = {
      noReply: ['header', 'body'],
      header: (name) => {
        seen.push(name);
        if (name === 'Subject') throw new Error('header bug');
      },
      body: () => void seen.push('body'),
      eom: () => void seen.push('eom'),
    };
    const { replies, log } = await exchange(filter, message);
    expect(replies.map(([c]) => c)).toEqual(['O', 'c', 'c', 'c', 't']);
    expect(seen).toEqual(['Subject']);
    expect(log).toContainEqual(expect.objectContaining({ event: 'filter-error', stage: 'header', error: 'header bug', fallback: 'tempfail' }));
  });

  it('a discard from a no-reply RCPT hook is kept for the next answer: it is about the whole message', async () => {
    const ran: string[] = [];
    const filter: MilterFilter = {
      noReply: ['envRcpt'],
      envRcpt: (rcpt) => (ran.push(`rcpt ${rcpt}`), rcpt.includes('trap') ? 'discard' : 'continue'),
      eom: () => (ran.push('eom'), 'continue'),
    };
    const frames = [POSTFIX_OPTNEG, encodeFrame(Command.RCPT, z('<trap@x>\0')), encodeFrame(Command.RCPT, z('<c@d>\0')), encodeFrame(Command.BODYEOB)];
    const { replies, log } = await exchange(filter, frames);
    expect(ran).toEqual(['rcpt <trap@x>']);
    expect(replies.map(([c]) => c).join('')).toBe('Od');
    expect(log).toEqual([]);
  });

  it('a header changed to an empty value goes out blank, never empty (which deletes), with or without HDR_LEADSPC', async () => {
    const filter: MilterFilter = {
      eom: (changes) => {
        changes.changeHeader('X-Tag', 1, '');
        changes.deleteHeader('X-Gone', 1);
        return 'continue';
      },
    };
    const frames = (protocol: number) => [encodeFrame(Command.OPTNEG, z(u32(6), u32(0x1ff), u32(protocol))), encodeFrame(Command.BODYEOB)];
    for (const [protocol, blank] of [[0x1fffff, ' '], [0x1fffff & ~Protocol.HDR_LEADSPC, ' ']] as const) {
      const { replies } = await exchange(filter, frames(protocol));
      const changed = replies.filter(([c]) => c === 'm').map(([, data]) => data.subarray(4).toString('latin1'));
      expect(changed.sort()).toEqual([`X-Gone\0\0`, `X-Tag\0${blank}\0`].sort());
    }
  });

  it('a discard at RCPT settles the whole message: no later hook runs, end of message is answered without eom', async () => {
    const ran: string[] = [];
    const filter: MilterFilter = {
      envFrom: () => 'continue',
      envRcpt: (rcpt) => (ran.push(`rcpt ${rcpt}`), rcpt.includes('trap') ? 'discard' : 'continue'),
      header: () => void ran.push('header'),
      eom: () => (ran.push('eom'), 'continue'),
    };
    const frames = [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.RCPT, z('<trap@x>\0')), encodeFrame(Command.RCPT, z('<c@d>\0')), encodeFrame(Command.HEADER, z('Subject\0 x\0')), encodeFrame(Command.BODYEOB)];
    const { replies } = await exchange(filter, frames);
    expect(ran).toEqual(['rcpt <trap@x>']);
    // OPTNEG, MAIL, the discarding RCPT, then the other RCPT, the header and end of message answered by the session.
    expect(replies.map(([c]) => c).join('')).toBe('Ocdccc');
  });

  it('a verdict from a no-reply stage answers the next stage the MTA waits for: every RCPT, or the end of message', async () => {
    const rejectAtMail: MilterFilter = { noReply: ['envFrom'], envFrom: () => ({ reply: '550 5.7.1 not from you' }), envRcpt: () => 'continue', eom: () => 'continue' };
    const { replies } = await exchange(rejectAtMail, message);
    // Each RCPT gets it; had the MTA gone on anyway, the first header would too, and the message is settled.
    expect(replies.map(([c, d]) => (c === 'y' ? d.toString('latin1').replace(/\0$/, '') : c))).toEqual(['O', '550 5.7.1 not from you', '550 5.7.1 not from you', '550 5.7.1 not from you', 'c', 'c', 'c']);
    const rejectInHeader: MilterFilter = { noReply: ['header'], header: (name) => (name === 'X-Two' ? 'reject' : undefined), eom: () => 'accept' };
    // Here the body event is the next one answered (the filter has no body hook to make it no-reply).
    expect((await exchange(rejectInHeader, message)).replies.map(([c]) => c)).toEqual(['O', 'c', 'c', 'c', 'r', 'c']);
    // A connection-level verdict (from a no-reply connect) stays for the connection, and ends with it (QUIT_NC).
    const connect = encodeFrame(Command.CONNECT, z('client.test\0', '4', u16(25), '192.0.2.1\0'));
    const mail = encodeFrame(Command.MAIL, z('<a@example.com>\0'));
    let connections = 0;
    const rejectFirstClient: MilterFilter = { noReply: ['connect'], connect: () => (++connections === 1 ? 'reject' : undefined), envFrom: () => 'continue' };
    const quitNc = await exchange(rejectFirstClient, [POSTFIX_OPTNEG, connect, mail, mail, encodeFrame(Command.QUIT_NC), connect, mail]);
    expect(quitNc.replies.map(([c]) => c)).toEqual(['O', 'r', 'r', 'c']);
    const rejectInBody: MilterFilter = { noReply: ['header', 'body'], header: () => undefined, body: () => 'reject', eom: () => 'accept' };
    expect((await exchange(rejectInBody, message)).replies.map(([c]) => c)).toEqual(['O', 'c', 'c', 'c', 'r']);
  });
});

describe('milter session: a BODY packet split across reads', () => {
  /** The frames sent in reads of `readSize` bytes; returns the replies' commands. */
  async function inReads(filter: MilterFilter, frames: Buffer[], readSize: number): Promise<string[]> {
    const sent: Buffer[] = [];
    const session = new MilterSession(() => filter, { fallback: 'tempfail', hookTimeoutMs: 200, eomTimeoutMs: 200, log: () => {} }, (out) => sent.push(...out));
    const reader = new FrameReader(1 << 20);
    const all = Buffer.concat(frames);
    for (let i = 0; i < all.length; i += readSize) for (const frame of reader.push(all.subarray(i, i + readSize))) await session.handle(frame);
    return new FrameReader(1 << 20).push(Buffer.concat(sent)).map((f) => String.fromCharCode(f.command));
  }
  const body = Buffer.alloc(1000, 0x62);
  const frames = [POSTFIX_OPTNEG, encodeFrame(Command.HEADER, z('Subject\0 x\0')), encodeFrame(Command.BODY, body), encodeFrame(Command.BODYEOB)];

  it('reaches the body hook in pieces, all its bytes, and is answered once', async () => {
    const pieces: Buffer[] = [];
    const filter: MilterFilter = { body: (chunk) => void pieces.push(chunk), eom: () => 'continue' };
    expect(await inReads(filter, frames, 300)).toEqual(['O', 'c', 'c', 'c']);
    expect(pieces.length).toBeGreaterThan(1);
    expect(Buffer.concat(pieces)).toEqual(body);
  });

  it("a piece's verdict is the packet's answer, and no later piece runs the hook", async () => {
    let calls = 0;
    const rejectFirst: MilterFilter = { body: () => (++calls === 1 ? 'reject' : 'continue'), eom: () => 'accept' };
    expect(await inReads(rejectFirst, frames, 300)).toEqual(['O', 'c', 'r', 'c']);
    expect(calls).toBe(1);
  });
});

describe('milter session: message boundaries', () => {
  it('calls abort for a message begun without MAIL (negotiated away), and when end of message is answered without eom', async () => {
    const calls: string[] = [];
    const noMail: MilterFilter = { header: () => void calls.push('header'), eom: () => 'continue', abort: () => void calls.push('abort') };
    await exchange(noMail, [POSTFIX_OPTNEG, encodeFrame(Command.HEADER, z('Subject\0 x\0')), encodeFrame(Command.ABORT)]);
    expect(calls).toEqual(['header', 'abort']);
    calls.length = 0;
    const failing: MilterFilter = { noReply: ['header'], header: () => { throw new Error('bug'); }, eom: () => void calls.push('eom'), abort: () => void calls.push('abort') };
    const { replies } = await exchange(failing, [POSTFIX_OPTNEG, encodeFrame(Command.HEADER, z('Subject\0 x\0')), encodeFrame(Command.BODYEOB), encodeFrame(Command.ABORT)]);
    expect(replies.map(([c]) => c)).toEqual(['O', 't']);
    expect(calls).toEqual(['abort']);
  });

  it('a no-reply RCPT hook cannot refuse one recipient: its verdict is logged and dropped, its failure still gives the fallback', async () => {
    const picky: MilterFilter = { noReply: ['envRcpt'], envRcpt: (r) => (r.includes('bad') ? 'reject' : undefined), eom: () => 'continue' };
    const frames = [POSTFIX_OPTNEG, encodeFrame(Command.MAIL, z('<a@x>\0')), encodeFrame(Command.RCPT, z('<good@x>\0')), encodeFrame(Command.RCPT, z('<bad@x>\0')), encodeFrame(Command.BODYEOB)];
    const dropped = await exchange(picky, frames);
    expect(dropped.replies.map(([c]) => c)).toEqual(['O', 'c', 'c']);
    expect(dropped.log).toContainEqual(expect.objectContaining({ event: 'filter-error', stage: 'envRcpt' }));
    const broken: MilterFilter = { noReply: ['envRcpt'], envRcpt: () => { throw new Error('bug'); }, eom: () => 'continue' };
    expect((await exchange(broken, frames)).replies.map(([c]) => c)).toEqual(['O', 'c', 't']);
  });
});

describe('messageFilter: recipients the MTA did not wait for', () => {
  it('tells the work at the end that they were not checked at RCPT (one that began checking after the connection negotiated, even across QUIT_NC)', async () => {
    const ran: boolean[] = [];
    const asked: string[] = [];
    let checks = false;
    const work: MessageWork = {
      get checksRecipients() {
        return checks;
      },
      open: () => ({
        begin: () => {},
        recipient: (recipient) => void asked.push(recipient),
        run: async ({ body, recipientsChecked }) => {
          await body.take();
          ran.push(recipientsChecked);
          return { verdict: 'continue', edits: [] };
        },
        answered: () => {},
        oversize: () => {},
        close: () => {},
      }),
    };
    const message = [encodeFrame(Command.MAIL, z('<a@b>\0')), encodeFrame(Command.RCPT, z('<c@d>\0')), encodeFrame(Command.BODYEOB)];
    // Negotiated while the work did not check: RCPT is sent without waiting for an answer.
    const sent: Buffer[] = [];
    const session = new MilterSession(messageFilter(work), { fallback: 'tempfail', hookTimeoutMs: 200, eomTimeoutMs: 200, log: () => {} }, (frames) => sent.push(...frames));
    const handle = async (frames: Buffer[]) => {
      for (const frame of new FrameReader(1 << 20).push(Buffer.concat(frames))) await session.handle(frame);
    };
    await handle([POSTFIX_OPTNEG, ...message]);
    // Now it checks (a reload); the same connection, and a new SMTP session on it.
    checks = true;
    await handle(message);
    await handle([encodeFrame(Command.QUIT_NC), ...message]);
    // Never asked at RCPT: the work must check them at the end (where it checks at all).
    expect(ran).toEqual([false, false, false]);
    expect(asked).toEqual([]);
    // A connection negotiated while it checks: asked at RCPT, and the end says so.
    const fresh = new MilterSession(messageFilter(work), { fallback: 'tempfail', hookTimeoutMs: 200, eomTimeoutMs: 200, log: () => {} }, () => {});
    for (const frame of new FrameReader(1 << 20).push(Buffer.concat([POSTFIX_OPTNEG, ...message]))) await fresh.handle(frame);
    expect(asked).toEqual(['<c@d>']);
    expect(ran.at(-1)).toBe(true);
  });
});
