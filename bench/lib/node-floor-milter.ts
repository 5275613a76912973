// The benchmark's node floor: the least a milter written for node can do per message. It splits the
// stream into frames with milterkit's frame reader (views, no copies), answers OPTNEG exactly as the
// daemon's adapter does (the same events, no-reply stages and macro lists, so the MTA does the same
// work) and end of message with "continue", and nothing else: no session per connection, no buffering,
// no parsing, no log. What it costs is node's own share (sockets, streams, the event loop).
//
//     node --import tsx bench/lib/node-floor-milter.ts unix:/path/to/socket
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { encodeResponse, FrameReader, type Frame } from '../../src/milter/codec.js';
import { messageFilter } from '../../src/milter/message-adapter.js';
import { Command } from '../../src/milter/protocol.js';
import { MilterSession } from '../../src/milter/session.js';

const CONTINUE = encodeResponse({ type: 'continue' });
const MAX_PACKET_SIZE = 1 << 20;

/** The adapter's answer to each OPTNEG offer seen, worked out once by a real session. */
const negotiated = new Map<string, Buffer[]>();

async function optnegReply(offer: Frame): Promise<Buffer[]> {
  const key = offer.data.toString('hex');
  let reply = negotiated.get(key);
  if (!reply) {
    let sent: Buffer[] = [];
    const session = new MilterSession(messageFilter(() => ({ action: 'accept' })), { fallback: 'tempfail', hookTimeoutMs: 1000, eomTimeoutMs: 1000, log: () => {} }, (frames) => (sent = frames));
    await session.handle(offer);
    reply = sent;
    negotiated.set(key, reply);
  }
  return reply;
}

function serve(socket: Socket): void {
  const reader = new FrameReader(MAX_PACKET_SIZE);
  socket.on('data', (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) {
      if (frame.command === Command.OPTNEG) void optnegReply(frame).then((reply) => reply.forEach((b) => socket.write(b)));
      else if (frame.command === Command.BODYEOB) socket.write(CONTINUE);
      else if (frame.command === Command.QUIT) socket.end();
    }
  });
  socket.on('error', () => socket.destroy());
}

const path = (process.argv[2] ?? '').replace(/^unix:/, '');
rmSync(path, { force: true });
createServer(serve).listen(path, () => chmodSync(path, 0o666));
