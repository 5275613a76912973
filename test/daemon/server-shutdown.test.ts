import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { encodeFrame, FrameReader, startMilterServer } from '../../src/index.js';
import { Command } from '../../src/milter/protocol.js';

const u32 = (n: number): Buffer => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);

describe('milter server: graceful shutdown', () => {
  it('lets a message in progress finish, then ends its connection; ends idle connections at once', async () => {
    const server = await startMilterServer({ listen: 'inet:0@127.0.0.1', log: () => {}, filter: () => ({ envFrom: () => 'continue', eom: () => 'continue' }) });
    const { port } = server.address as { port: number };
    const open = async () => {
      const socket = connect({ port, host: '127.0.0.1' });
      const reader = new FrameReader(1 << 20);
      const replies: string[] = [];
      let ended = false;
      socket.on('data', (d: Buffer) => replies.push(...reader.push(d).map((f) => String.fromCharCode(f.command))));
      socket.on('end', () => (ended = true));
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(encodeFrame(Command.OPTNEG, Buffer.concat([u32(6), u32(0x1ff), u32(0x1fffff)])));
      return { socket, replies, ended: () => ended };
    };
    const until = async (condition: () => boolean) => {
      for (let i = 0; i < 100 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 20));
    };
    const idle = await open();
    const busy = await open();
    busy.socket.write(encodeFrame(Command.MAIL, Buffer.from('<a@example.com>\0')));
    await until(() => busy.replies.length === 2 && idle.replies.length === 1);

    const closed = server.close();
    await until(() => idle.ended());
    expect(idle.ended()).toBe(true);
    expect(busy.ended()).toBe(false);
    // The message goes on to its end, answered, and only then is the connection ended.
    busy.socket.write(encodeFrame(Command.BODYEOB));
    await until(() => busy.ended());
    expect(busy.replies).toEqual(['O', 'c', 'c']);
    expect(busy.ended()).toBe(true);
    await closed;
    idle.socket.destroy();
    busy.socket.destroy();
  });
});

describe('milter server: limits on connections', () => {
  it('closes a connection silent past idleTimeoutMs, and connections beyond maxConnections as they come', async () => {
    const server = await startMilterServer({ listen: 'inet:0@127.0.0.1', log: () => {}, idleTimeoutMs: 300, maxConnections: 1, filter: () => ({ eom: () => 'continue' }) });
    const { port } = server.address as { port: number };
    const open = async () => {
      const socket = connect({ port, host: '127.0.0.1' });
      const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
      await new Promise((resolve) => socket.once('connect', resolve));
      return { socket, closed };
    };
    const opened = Date.now();
    // Connects, never negotiates: a peer that went quiet.
    const silent = await open();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const extra = await open();
    expect((await extra.closed) - opened).toBeLessThan(250);
    const after = (await silent.closed) - opened;
    expect(after).toBeGreaterThanOrEqual(250);
    expect(after).toBeLessThan(3000);
    for (let i = 0; i < 50 && server.connections > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.connections).toBe(0);
    await server.close();
  });
});

describe('milterkit milter: maxConnections in a cluster', () => {
  it('each worker closes a connection past its own limit (node:cluster would otherwise pass it between full workers for ever)', async () => {
    const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { startDaemon } = await import('../support/daemon.js');
    const dir = mkdtempSync(join(tmpdir(), 'milterkit-maxconn-'));
    writeFileSync(join(dir, 'milterkit.json'), JSON.stringify({ listen: 'inet:0@127.0.0.1', workers: 2, maxConnections: 1, statsIntervalSeconds: 0, health: '127.0.0.1:0' }));
    const daemon = await startDaemon(['--config', join(dir, 'milterkit.json')], { workers: 2 });
    const sockets: import('node:net').Socket[] = [];
    try {
      const { port } = daemon.lines.find((l) => l.event === 'listening')?.address as { port: number };
      const closed: number[] = [];
      for (let i = 0; i < 3; i++) {
        const socket = connect({ port, host: '127.0.0.1' });
        socket.on('error', () => {});
        socket.once('close', () => closed.push(i));
        sockets.push(socket);
        await new Promise((resolve) => socket.once('connect', resolve));
      }
      // Two workers, one connection each: the third is refused, the first two stay.
      await daemon.waitFor((l) => l.event === 'connection-refused', 5000);
      for (let i = 0; i < 50 && closed.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(closed).toHaveLength(1);
      const health = daemon.lines.find((l) => l.event === 'cluster')?.health as { port: number };
      expect(await (await fetch(`http://127.0.0.1:${health.port}/health`)).json()).toMatchObject({ connectionsRefused: 1, connections: 2 });
    } finally {
      for (const socket of sockets) socket.destroy();
      expect(await daemon.stop()).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('milterkit milter: stopping', () => {
  it('a SIGTERM as soon as it says it listens stops it gracefully, never kills it (one process, and a cluster)', async () => {
    const { startDaemon } = await import('../support/daemon.js');
    for (const workers of [1, 1, 1, 1, 1, 1, 2, 2]) {
      const daemon = await startDaemon(['--listen', 'inet:0@127.0.0.1', '--workers', String(workers)], { workers });
      expect(await daemon.stop()).toBe(0);
      expect(daemon.lines.map((l) => l.event)).toContain('stopped');
    }
  }, 60_000);
});
