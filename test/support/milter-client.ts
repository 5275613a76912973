import { connect, type Socket } from 'node:net';
import { encodeFrame, FrameReader, type Frame } from '../../src/milter/codec.js';
import { Command } from '../../src/milter/protocol.js';

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** What Postfix 3 offers at negotiation: version 6, every action, every protocol bit. */
export const POSTFIX_OFFER = encodeFrame(Command.OPTNEG, Buffer.concat([u32(6), u32(0x1ff), u32(0x1fffff)]));

/** A raw MTA side on a real socket, for tests of what a milter server does with what a peer sends. */
export interface RawMilterPeer {
  socket: Socket;
  /** The milter's replies so far, as command letters. */
  replies: string[];
  frames: Frame[];
  /** Resolves with the time the connection closed (from either side). */
  closed: Promise<number>;
  send(command: number, data?: Buffer | string): void;
  /** Waits until `count` replies came, or the time is up (resolves either way; the caller asserts). */
  replied(count: number, timeoutMs?: number): Promise<void>;
}

export async function rawPeer(target: { port: number } | { path: string }): Promise<RawMilterPeer> {
  const socket = 'path' in target ? connect(target.path) : connect({ port: target.port, host: '127.0.0.1' });
  const reader = new FrameReader(1 << 30);
  const frames: Frame[] = [];
  const replies: string[] = [];
  socket.on('data', (d: Buffer) => {
    for (const f of reader.push(d)) {
      frames.push(f);
      replies.push(String.fromCharCode(f.command));
    }
  });
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return {
    socket,
    replies,
    frames,
    closed,
    send: (command, data = Buffer.alloc(0)) => void socket.write(encodeFrame(command, typeof data === 'string' ? Buffer.from(data, 'latin1') : data)),
    async replied(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (replies.length < count && Date.now() < deadline && !socket.destroyed) await new Promise((resolve) => setTimeout(resolve, 10));
    },
  };
}

/** The letters of verdict replies (accept, continue, discard, reject, tempfail, custom reply). */
const VERDICTS = 'acdrty';

/**
 * One whole message over a connection that has negotiated, as an MTA sends it to a milter that takes
 * MAIL, RCPT (unless it checks recipients), headers and body without answering (the daemon's adapter).
 * Resolves with the replies that came for it once its end-of-message verdict did.
 */
export async function sendOn(peer: RawMilterPeer, message: { subject: string; recipients?: string[]; body?: string; rcptAnswered?: boolean }): Promise<string[]> {
  const from = peer.replies.length;
  const recipients = message.recipients ?? ['b@example.org'];
  // Where the milter answers each RCPT, those answers come before the one at end of message.
  const verdicts = message.rcptAnswered ? recipients.length + 1 : 1;
  peer.send(Command.MAIL, '<a@example.com>\0');
  for (const recipient of recipients) peer.send(Command.RCPT, `<${recipient}>\0`);
  peer.send(Command.HEADER, `Subject\0 ${message.subject}\0`);
  peer.send(Command.BODY, message.body ?? 'Hello.\r\n');
  peer.send(Command.BODYEOB);
  const deadline = Date.now() + 10_000;
  while (peer.replies.slice(from).filter((r) => VERDICTS.includes(r)).length < verdicts && Date.now() < deadline && !peer.socket.destroyed) await new Promise((resolve) => setTimeout(resolve, 10));
  return peer.replies.slice(from);
}

/** A whole message on a connection of its own (see sendOn): the replies, negotiation's first. */
export async function sendOverMilter(target: { port: number } | { path: string }, subject: string, options: { rcptAnswered?: boolean } = {}): Promise<string[]> {
  const peer = await rawPeer(target);
  try {
    peer.socket.write(POSTFIX_OFFER);
    await peer.replied(1);
    return ['O', ...(await sendOn(peer, { subject, ...options }))];
  } finally {
    peer.socket.destroy();
  }
}
