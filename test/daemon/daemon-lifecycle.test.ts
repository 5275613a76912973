import { describe, expect, it } from 'vitest';
import { Command } from '../../src/milter/protocol.js';
import { configuredDaemon, startDaemon } from '../support/daemon.js';
import { POSTFIX_OFFER, rawPeer, type RawMilterPeer } from '../support/milter-client.js';

describe('milterkit milter: maxConnections in a cluster', () => {
  it('each worker counts its own connections (node:cluster would otherwise pass one between full workers for ever)', async () => {
    const d = await configuredDaemon('milterkit-maxconn-', { workers: 2, maxConnections: 1, health: '127.0.0.1:0' }, {}, { workers: 2 });
    const { daemon, port } = d;
    const peers: RawMilterPeer[] = [];
    try {
      // Two workers, one connection each, both in a message: nothing idle to make room.
      for (let i = 0; i < 2; i++) {
        const peer = await rawPeer({ port });
        peer.socket.write(POSTFIX_OFFER);
        peer.send(Command.MAIL, '<a@example.com>\0');
        await peer.replied(2);
        peers.push(peer);
      }
      const third = await rawPeer({ port });
      peers.push(third);
      await daemon.waitFor((l) => l.event === 'connection-refused', 5000);
      await third.closed;
      expect(peers.slice(0, 2).map((p) => p.socket.destroyed)).toEqual([false, false]);
      expect(await (await fetch(`http://127.0.0.1:${d.healthPort}/health`)).json()).toMatchObject({ connectionsRefused: 1, connections: 2 });
    } finally {
      for (const peer of peers) peer.socket.destroy();
      expect(await d.stop()).toBe(0);
    }
  }, 30_000);
});

describe('milterkit milter: stopping', () => {
  it('a SIGTERM as soon as it says it listens stops it gracefully, never kills it (one process, and a cluster)', async () => {
    for (const workers of [1, 1, 1, 1, 1, 1, 2, 2]) {
      const daemon = await startDaemon(['--listen', 'inet:0@127.0.0.1', '--workers', String(workers)], { workers });
      expect(await daemon.stop()).toBe(0);
      expect(daemon.lines.map((l) => l.event)).toContain('stopped');
    }
  }, 60_000);
});
