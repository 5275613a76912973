// The benchmark's node floor: the least a milter written for node can do per message. It negotiates what
// milterkit's adapter negotiates (the same events, no-reply stages and macro lists, so the MTA does the
// same work), reads frames and answers OPTNEG and end of message with "continue": no session, no
// buffering, no parsing, no log. What it costs is node's own share (sockets, streams, the event loop).
//
//     node --import tsx bench/lib/node-floor-milter.ts unix:/path/to/socket
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { MAIL_MACROS } from '../../src/milter/message-adapter.js';
import { Action, Command, MacroStage, PROTOCOL_VERSION, Protocol, Response } from '../../src/milter/protocol.js';

const PROTOCOL =
  Protocol.NOCONNECT | Protocol.NOHELO | Protocol.NODATA | Protocol.NOEOH | Protocol.NOUNKNOWN |
  Protocol.NR_MAIL | Protocol.NR_RCPT | Protocol.NR_HDR | Protocol.NR_BODY | Protocol.HDR_LEADSPC;
const ACTIONS = Action.ADDHDRS | Action.CHGHDRS | Action.CHGBODY | Action.QUARANTINE | Action.SETSYMLIST;

function frame(command: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.allocUnsafe(5);
  head.writeUInt32BE(data.length + 1, 0);
  head[4] = command;
  return Buffer.concat([head, data]);
}

function macroList(stage: number, names: readonly string[]): Buffer {
  const code = Buffer.allocUnsafe(4);
  code.writeUInt32BE(stage, 0);
  return Buffer.concat([code, Buffer.from(`${names.join(' ')}\0`)]);
}

function optnegReply(offer: Buffer): Buffer {
  const fields = Buffer.allocUnsafe(12);
  fields.writeUInt32BE(PROTOCOL_VERSION, 0);
  fields.writeUInt32BE(ACTIONS & offer.readUInt32BE(4), 4);
  fields.writeUInt32BE(PROTOCOL & offer.readUInt32BE(8), 8);
  return frame(Response.OPTNEG, Buffer.concat([fields, macroList(MacroStage.ENVFROM, MAIL_MACROS), macroList(MacroStage.EOM, ['i'])]));
}

const CONTINUE = frame(Response.CONTINUE);

function serve(socket: Socket): void {
  let pending: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const end = 4 + pending.readUInt32BE(0);
      const command = pending[4];
      if (command === Command.OPTNEG) socket.write(optnegReply(pending.subarray(5, end)));
      else if (command === Command.BODYEOB) socket.write(CONTINUE);
      else if (command === Command.QUIT) socket.end();
      pending = pending.subarray(end);
    }
  });
  socket.on('error', () => socket.destroy());
}

const path = (process.argv[2] ?? '').replace(/^unix:/, '');
rmSync(path, { force: true });
createServer(serve).listen(path, () => chmodSync(path, 0o666));
