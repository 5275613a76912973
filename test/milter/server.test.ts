import { describe, expect, it } from 'vitest';
import { startMilterServer, type MilterServerOptions } from '../../src/index.js';
import { Command } from '../../src/milter/protocol.js';
import { POSTFIX_OFFER, rawPeer, type RawMilterPeer } from '../support/milter-client.js';

const until = async (condition: () => boolean, timeoutMs = 3000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
};

/** A server on a loopback port with a filter that takes whole messages, its log lines, and peers to it. */
async function serve(options: Partial<MilterServerOptions> = {}) {
  const log: Record<string, unknown>[] = [];
  const server = await startMilterServer({ listen: 'inet:0@127.0.0.1', log: (event, fields) => log.push({ event, ...fields }), filter: () => ({ envFrom: () => 'continue', eom: () => 'continue' }), ...options });
  const { port } = server.address as { port: number };
  const peers: RawMilterPeer[] = [];
  return {
    server,
    log,
    async peer(): Promise<RawMilterPeer> {
      const peer = await rawPeer({ port });
      peers.push(peer);
      return peer;
    },
    /** A peer that has negotiated; with `busy`, one in the middle of a message (MAIL FROM sent). */
    async negotiated(busy = false): Promise<RawMilterPeer> {
      const peer = await this.peer();
      peer.socket.write(POSTFIX_OFFER);
      if (busy) peer.send(Command.MAIL, '<a@example.com>\0');
      await peer.replied(busy ? 2 : 1);
      return peer;
    },
    async close(): Promise<void> {
      for (const peer of peers) peer.socket.destroy();
      await server.close();
    },
  };
}

describe('milter server: graceful shutdown', () => {
  it('lets a message in progress finish, then ends its connection; ends idle connections at once', async () => {
    const s = await serve();
    const idle = await s.negotiated();
    const busy = await s.negotiated(true);
    let idleEnded = false;
    let busyEnded = false;
    idle.socket.on('end', () => (idleEnded = true));
    busy.socket.on('end', () => (busyEnded = true));

    const closed = s.server.close();
    await until(() => idleEnded);
    expect(idleEnded).toBe(true);
    expect(busyEnded).toBe(false);
    // The message goes on to its end, answered, and only then is the connection ended.
    busy.send(Command.BODYEOB);
    await until(() => busyEnded);
    expect(busy.replies).toEqual(['O', 'c', 'c']);
    expect(busyEnded).toBe(true);
    await closed;
    await s.close();
  });
});

describe('milter server: a stop and an answer still going out', () => {
  it('ends a connection whose last answer is still on its way once it is out, not at the end of the grace', async () => {
    const s = await serve({
      shutdownGraceMs: 6000,
      filter: () => ({
        envFrom: () => 'continue',
        eom: async (changes) => {
          await new Promise((r) => setTimeout(r, 300));
          changes.replaceBody(Buffer.alloc(20 * 1024 * 1024, 0x61));
          return 'continue' as const;
        },
      }),
    });
    const peer = await s.negotiated(true);
    peer.send(Command.BODYEOB);
    // The MTA reads slowly: the 20 MB answer waits in the daemon's socket when the stop begins.
    peer.socket.pause();
    await new Promise((r) => setTimeout(r, 400));
    const started = Date.now();
    const closed = s.server.close().then(() => Date.now() - started);
    await new Promise((r) => setTimeout(r, 500));
    peer.socket.resume();
    expect(await closed).toBeLessThan(3000);
    expect(peer.replies.at(-1)).toBe('c');
    await s.close();
  }, 20_000);
});

describe('milter server: a peer cannot hold a connection by saying nothing useful', () => {
  it('closes a connection silent past idleTimeoutMs, and says which limit closed it', async () => {
    const s = await serve({ idleTimeoutMs: 300 });
    const opened = Date.now();
    const silent = await s.negotiated();
    const after = (await silent.closed) - opened;
    expect(after).toBeGreaterThanOrEqual(280);
    expect(after).toBeLessThan(3000);
    expect(s.log).toContainEqual(expect.objectContaining({ event: 'connection-closed', limit: 'idleTimeoutMs' }));
    await s.close();
  });

  it('closes a connection that does not negotiate within negotiationTimeoutMs; one that did stays', async () => {
    const s = await serve({ negotiationTimeoutMs: 200 });
    const opened = Date.now();
    const mute = await s.peer();
    const polite = await s.negotiated();
    const after = (await mute.closed) - opened;
    expect(after).toBeGreaterThanOrEqual(180);
    expect(after).toBeLessThan(2000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(polite.socket.destroyed).toBe(false);
    expect(s.log.filter((l) => l.event === 'connection-closed')).toEqual([expect.objectContaining({ limit: 'negotiationTimeoutMs', reason: 'no negotiation within 200 ms' })]);
    await s.close();
  });

  it('closes a connection whose packet began and did not finish within frameTimeoutMs; a packet finished in time is fine', async () => {
    const s = await serve({ frameTimeoutMs: 300 });
    const half = await s.negotiated();
    const slow = await s.negotiated();
    // A HELO packet announced as 20 bytes, of which 8 come now.
    const helo = Buffer.concat([Buffer.from([0, 0, 0, 20, Command.HELO]), Buffer.from('mx.example.test\0\0\0\0', 'latin1')]);
    const sent = Date.now();
    half.socket.write(helo.subarray(0, 8));
    slow.socket.write(helo.subarray(0, 8));
    await new Promise((resolve) => setTimeout(resolve, 150));
    slow.socket.write(helo.subarray(8));
    const after = (await half.closed) - sent;
    expect(after).toBeGreaterThanOrEqual(280);
    expect(after).toBeLessThan(2000);
    expect(slow.socket.destroyed).toBe(false);
    expect(s.log).toContainEqual(expect.objectContaining({ event: 'connection-closed', limit: 'frameTimeoutMs', reason: 'a packet begun 300 ms ago is still incomplete (8 bytes)' }));
    await s.close();
  });

  it('when the table is full, closes the connection idle longest to admit a new one; only when none is idle is the new one refused', async () => {
    const s = await serve({ maxConnections: 3 });
    const older = await s.negotiated();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const newer = await s.negotiated();
    const busy = await s.negotiated(true);
    // Full: the idle one heard from least recently makes room, the busy one and the newer idle one stay.
    const first = await s.negotiated();
    await older.closed;
    expect([newer.socket.destroyed, busy.socket.destroyed, first.socket.destroyed]).toEqual([false, false, false]);
    expect(s.log).toContainEqual(expect.objectContaining({ event: 'connection-closed', limit: 'maxConnections', reason: expect.stringMatching(/^no message in progress for \d+ ms: closed to make room for a new connection$/) }));
    // Every connection in a message: the next one is refused, and none of them is touched.
    newer.send(Command.MAIL, '<b@example.com>\0');
    first.send(Command.MAIL, '<c@example.com>\0');
    await Promise.all([newer.replied(2), first.replied(2)]);
    const refused = await s.peer();
    await refused.closed;
    expect([newer.socket.destroyed, busy.socket.destroyed, first.socket.destroyed]).toEqual([false, false, false]);
    expect(s.log).toContainEqual(expect.objectContaining({ event: 'connection-refused', reason: '3 connections already, none idle (maxConnections)' }));
    // The messages in progress finish as usual.
    for (const peer of [newer, busy, first]) peer.send(Command.BODYEOB);
    await Promise.all([newer, busy, first].map((peer) => peer.replied(3)));
    expect([newer, busy, first].map((peer) => peer.replies.join(''))).toEqual(['Occ', 'Occ', 'Occ']);
    await s.close();
  });

  it('refuses limits that cannot mean what they say', async () => {
    await expect(startMilterServer({ listen: 'inet:0@127.0.0.1', filter: () => ({}), maxConnections: 0 })).rejects.toThrow(/maxConnections must be a positive integer/);
    await expect(startMilterServer({ listen: 'inet:0@127.0.0.1', filter: () => ({}), frameTimeoutMs: 2 ** 31 })).rejects.toThrow(/frameTimeoutMs must be an integer from 0/);
    await expect(startMilterServer({ listen: 'inet:0@127.0.0.1', filter: () => ({}), eomTimeoutMs: 0 })).rejects.toThrow(/eomTimeoutMs must be an integer from 1/);
  });
});

describe('milter server: a peer cannot make the daemon hold what it sends', () => {
  it('macros past maxMacroBytes close the connection as a protocol error', async () => {
    const s = await serve({ maxMacroBytes: 4096 });
    const peer = await s.negotiated();
    // Each stage's macros count, whatever the stage letter.
    for (let stage = 0; stage < 8; stage++) peer.send(Command.MACRO, Buffer.concat([Buffer.from([0x41 + stage]), Buffer.from(`{m}\0${'v'.repeat(1000)}\0`)]));
    await peer.closed;
    expect(s.log).toContainEqual(expect.objectContaining({ event: 'protocol-error', error: expect.stringMatching(/^macros of \d+ bytes, over the limit of 4096 \(maxMacroBytes\)$/) }));
    await s.close();
  });

  it('reads no further ahead of what it has handled than twice maxPacketSize: the rest waits in the peer\'s socket', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const s = await serve({ maxPacketSize: 65_536, filter: () => ({ envFrom: () => 'continue', body: () => undefined, eom: () => held.then(() => 'continue' as const) }) });
    const peer = await s.negotiated(true);
    peer.send(Command.BODYEOB);
    // While that end of message is held, the peer goes on sending (as no MTA does): 32 MB of body.
    const piece = Buffer.alloc(65_000, 0x61);
    for (let i = 0; i < 500; i++) peer.send(Command.BODY, piece);
    await new Promise((r) => setTimeout(r, 500));
    // The daemon stopped reading: most of it is still on the peer's side.
    expect(peer.socket.writableLength).toBeGreaterThan(16 * 1024 * 1024);
    release();
    for (let i = 0; i < 200 && peer.socket.writableLength > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(peer.socket.writableLength).toBe(0);
    expect(peer.socket.destroyed).toBe(false);
    await s.close();
  }, 20_000);
});

describe('milter server: after QUIT, and tiny packets', () => {
  it('handles nothing after QUIT: a message begun after it would never end', async () => {
    const seen: string[] = [];
    const s = await serve({ filter: () => ({ envFrom: (sender) => void seen.push(sender), eom: () => 'continue' }) });
    const peer = await s.negotiated();
    peer.send(Command.QUIT);
    peer.send(Command.MAIL, '<after-quit@example.com>\0');
    peer.send(Command.BODYEOB);
    await peer.closed;
    expect(seen).toEqual([]);
    expect(peer.replies).toEqual(['O']);
    await s.close();
  });

  it('counts what a waiting packet costs besides its bytes: a flood of tiny ones is not read ahead', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const s = await serve({ maxPacketSize: 65_536, filter: () => ({ envFrom: () => 'continue', eom: () => held.then(() => 'continue' as const) }) });
    const peer = await s.negotiated(true);
    peer.send(Command.BODYEOB);
    const heapBefore = process.memoryUsage().heapUsed;
    // Two million ABORT packets (5 bytes each, 10 MB) behind the held end of message. Each one waiting
    // costs the server far more than its 5 bytes: counted by bytes alone, 200,000 of them would wait.
    const aborts = Buffer.concat(Array.from({ length: 200_000 }, () => Buffer.from([0, 0, 0, 1, Command.ABORT])));
    for (let i = 0; i < 10; i++) peer.socket.write(aborts);
    await new Promise((r) => setTimeout(r, 500));
    expect(peer.socket.writableLength).toBeGreaterThan(4 * 1024 * 1024);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(40 * 1024 * 1024);
    release();
    for (let i = 0; i < 500 && peer.socket.writableLength > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(peer.socket.writableLength).toBe(0);
    await s.close();
  }, 30_000);
});
