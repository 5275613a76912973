import { FrameReader, type Frame } from './codec.js';
import type { FilterFactory } from './filter.js';
import { CHUNK_SIZE, Command, Response } from './protocol.js';
import { MilterSession, SESSION_DEFAULTS, type SessionOptions } from './session.js';

/**
 * A filter run against a message without an MTA (pymilter's Milter.test): the engine is driven with the
 * packets Postfix would send, and the modifications it answers are applied the way Postfix applies them,
 * so a test sees the verdict and the message as it would be delivered.
 */
export interface HarnessInput {
  message: Buffer;
  sender: string;
  recipients: string[];
  client?: { hostname?: string; address?: string; helo?: string };
  /** Macros by stage letter ('C', 'H', 'M', 'R', 'T', 'N', 'E'). */
  macros?: Partial<Record<string, Record<string, string>>>;
  options?: Partial<SessionOptions>;
  /** What the MTA offers at negotiation (SMFIC_OPTNEG's words); default Postfix 3's: version 6, everything. */
  offer?: Partial<{ version: number; actions: number; protocol: number }>;
}

export interface HarnessResult {
  /** Where the message stopped: its final verdict, and the stage that gave it. */
  verdict: 'continue' | 'accept' | 'reject' | 'tempfail' | 'discard';
  stage: string;
  /** The custom reply, when the filter gave one. */
  reply: string | undefined;
  /** The message as the MTA would deliver it (undefined when it is not delivered). */
  delivered: Buffer | undefined;
  recipients: string[];
  sender: string;
  quarantine: string | undefined;
  log: Record<string, unknown>[];
}

const POSTFIX_OFFER = { version: 6, actions: 0x1ff, protocol: 0x1fffff };

const VERDICTS: Readonly<Record<number, HarnessResult['verdict']>> = {
  [Response.ACCEPT]: 'accept',
  [Response.REJECT]: 'reject',
  [Response.TEMPFAIL]: 'tempfail',
  [Response.DISCARD]: 'discard',
  [Response.CONTINUE]: 'continue',
};

/** Records a verdict frame in the result: a REPLYCODE's class decides between reject and tempfail. */
function recordVerdict(frame: Frame, result: HarnessResult): HarnessResult {
  if (frame.command === Response.REPLYCODE) {
    result.reply = frame.data.toString('latin1').replace(/\0$/, '');
    result.verdict = result.reply.startsWith('4') ? 'tempfail' : 'reject';
  } else result.verdict = VERDICTS[frame.command] ?? 'continue';
  return result;
}

function nul(...parts: string[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(`${p}\0`, 'latin1')));
}

/** The header fields of a message as an MTA passes them: name, and the raw value after the colon (LF folding). */
function headerFields(message: Buffer): { fields: [string, Buffer][]; body: Buffer } {
  const text = message.toString('latin1');
  const split = /\r?\n\r?\n/.exec(text);
  const headerText = split ? text.slice(0, split.index) : text;
  const body = split ? message.subarray(split.index + split[0].length) : Buffer.alloc(0);
  const fields: [string, Buffer][] = [];
  for (const line of headerText.split(/\r?\n/)) {
    const last = fields[fields.length - 1];
    if (/^[ \t]/.test(line) && last) last[1] = Buffer.concat([last[1], Buffer.from(`\n${line}`, 'latin1')]);
    else if (line.includes(':')) fields.push([line.slice(0, line.indexOf(':')), Buffer.from(line.slice(line.indexOf(':') + 1), 'latin1')]);
  }
  return { fields, body };
}

export async function runMilter(factory: FilterFactory, input: HarnessInput): Promise<HarnessResult> {
  const sent: Buffer[] = [];
  const log: Record<string, unknown>[] = [];
  const session = new MilterSession(factory, { ...SESSION_DEFAULTS, log: (event, fields) => log.push({ event, ...fields }), ...input.options }, (frames) => sent.push(...frames));
  const replies = (): Frame[] => new FrameReader(1 << 30).push(Buffer.concat(sent.splice(0)));
  const result: HarnessResult = { verdict: 'continue', stage: 'eom', reply: undefined, delivered: undefined, recipients: [...input.recipients], sender: input.sender, quarantine: undefined, log };

  // Negotiation first: which events the filter wants, and whether values go out verbatim.
  const optneg = Buffer.alloc(12);
  const offer = { ...POSTFIX_OFFER, ...input.offer };
  optneg.writeUInt32BE(offer.version, 0);
  optneg.writeUInt32BE(offer.actions, 4);
  optneg.writeUInt32BE(offer.protocol, 8);
  await session.handle({ command: Command.OPTNEG, data: optneg });
  const negotiated = replies()[0] as Frame;
  const protocol = negotiated.data.readUInt32BE(8);
  const leadingSpace = (protocol & 0x100000) !== 0;

  const client = input.client ?? {};
  const address = client.address ?? '127.0.0.1';
  const lists = macroLists(negotiated.data);
  // What Postfix knows at any stage, for the macro lists a filter asks for (Postfix has no HELO macro).
  const known: Record<string, string> = { '{client_addr}': address, '{client_name}': client.hostname ?? 'localhost', ...Object.assign({}, ...Object.values(input.macros ?? {})) };
  const macro = async (stage: string): Promise<void> => {
    const list = lists.get(stage);
    const values = list ? Object.fromEntries(list.filter((name) => known[name] !== undefined).map((name) => [name, known[name] as string])) : input.macros?.[stage];
    if (values) await session.handle({ command: Command.MACRO, data: Buffer.concat([Buffer.from(stage), ...Object.entries(values).map(([k, v]) => nul(k, v))]) });
  };
  /** Sends one event unless negotiated away; returns the verdict frame, or undefined to go on. */
  const step = async (stage: string, skipBit: number, frame: Frame): Promise<Frame | undefined> => {
    await macro(String.fromCharCode(frame.command));
    if (skipBit && (protocol & skipBit) !== 0) return undefined;
    await session.handle(frame);
    const verdict = replies().pop();
    if (!verdict || verdict.command === Response.CONTINUE) return undefined;
    result.stage = stage;
    return verdict;
  };
  const finish = (frame: Frame): HarnessResult => recordVerdict(frame, result);

  const port = Buffer.alloc(2);
  port.writeUInt16BE(25);
  const { fields, body } = headerFields(input.message);
  const stops: [string, number, Frame][] = [
    ['connect', 0x1, { command: Command.CONNECT, data: Buffer.concat([nul(client.hostname ?? 'localhost'), Buffer.from(address.includes(':') ? '6' : '4'), port, nul(address)]) }],
    ['helo', 0x2, { command: Command.HELO, data: nul(client.helo ?? 'client.test') }],
    ['envFrom', 0x4, { command: Command.MAIL, data: nul(`<${input.sender}>`) }],
  ];
  for (const [stage, bit, frame] of stops) {
    const verdict = await step(stage, bit, frame);
    if (verdict) return finish(verdict);
  }
  // A rejected recipient is dropped; the message goes on for the others (RCPT verdicts are per recipient),
  // but accept and discard are about the whole message.
  const accepted: string[] = [];
  for (const rcpt of input.recipients) {
    const verdict = await step('envRcpt', 0x8, { command: Command.RCPT, data: nul(`<${rcpt}>`) });
    if (!verdict || verdict.command === Response.ACCEPT) accepted.push(rcpt);
    if (verdict?.command === Response.ACCEPT) return { ...finish(verdict), recipients: input.recipients, delivered: input.message };
    if (verdict?.command === Response.DISCARD) return finish(verdict);
  }
  result.recipients = accepted;
  if (accepted.length === 0) return { ...result, verdict: 'reject', stage: 'envRcpt' };
  const later: [string, number, Frame][] = [
    ['data', 0x200, { command: Command.DATA, data: Buffer.alloc(0) }],
    ...fields.map(([name, value]): [string, number, Frame] => ['header', 0x20, { command: Command.HEADER, data: Buffer.concat([Buffer.from(`${name}\0`, 'latin1'), leadingSpace ? value : value.subarray(value[0] === 0x20 ? 1 : 0), Buffer.from([0])]) }]),
    ['eoh', 0x40, { command: Command.EOH, data: Buffer.alloc(0) }],
  ];
  const crlfBody = Buffer.from(body.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
  for (let i = 0; i < crlfBody.length; i += CHUNK_SIZE) later.push(['body', 0x10, { command: Command.BODY, data: crlfBody.subarray(i, i + CHUNK_SIZE) }]);
  for (const [stage, bit, frame] of later) {
    const verdict = await step(stage, bit, frame);
    if (verdict?.command === Response.ACCEPT) return { ...finish(verdict), delivered: input.message };
    if (verdict && verdict.command !== Response.SKIP) return finish(verdict);
  }
  await macro('E');
  await session.handle({ command: Command.BODYEOB, data: Buffer.alloc(0) });
  return applyModifications(replies(), fields, crlfBody, result, leadingSpace);
}

/** The command letter of each SMFIM_* stage, whose macros come before that command. */
const MACRO_STAGE_COMMANDS = ['C', 'H', 'M', 'R', 'T', 'E', 'N'];

/** The macro lists of an OPTNEG reply (after its three words: stage, then NUL-terminated names), by command letter. */
function macroLists(optneg: Buffer): Map<string, string[]> {
  const lists = new Map<string, string[]>();
  let at = 12;
  while (at + 4 < optneg.length) {
    const stage = MACRO_STAGE_COMMANDS[optneg.readUInt32BE(at)];
    const end = optneg.indexOf(0, at + 4);
    const names = optneg.subarray(at + 4, end < 0 ? optneg.length : end).toString('latin1');
    if (stage) lists.set(stage, names.split(/[\s,]+/).filter(Boolean));
    at = end < 0 ? optneg.length : end + 1;
  }
  return lists;
}

/** Applies end-of-message replies as Postfix does: header edits by per-name index, body, envelope, verdict. */
function applyModifications(frames: Frame[], original: [string, Buffer][], body: Buffer, result: HarnessResult, leadingSpace: boolean): HarnessResult {
  const headers = original.map(([name, value]): [string, string] => [name, value.toString('latin1')]);
  const bodyParts: Buffer[] = [];
  let replaced = false;
  const readHeader = (data: Buffer, offset: number): [string, string] => {
    const [name, value] = data.subarray(offset).toString('latin1').split('\0') as [string, string];
    return [name, leadingSpace ? value : ` ${value}`];
  };
  for (const frame of frames) {
    switch (frame.command) {
      case Response.ADDHEADER:
        headers.push(readHeader(frame.data, 0));
        break;
      case Response.INSHEADER:
        headers.splice(frame.data.readUInt32BE(0), 0, readHeader(frame.data, 4));
        break;
      case Response.CHGHEADER: {
        const index = Math.max(1, frame.data.readUInt32BE(0));
        const [name, value] = readHeader(frame.data, 4);
        const positions = headers.map((h, i) => (h[0].toLowerCase() === name.toLowerCase() ? i : -1)).filter((i) => i >= 0);
        const at = positions[index - 1];
        // As Postfix: an empty value (not a blank one) deletes.
        if (frame.data.length === 4 + Buffer.byteLength(name, 'latin1') + 2) {
          if (at !== undefined) headers.splice(at, 1);
        } else if (at !== undefined) headers[at] = [name, value];
        else headers.push([name, value]);
        break;
      }
      case Response.REPLBODY:
        replaced = true;
        bodyParts.push(frame.data);
        break;
      case Response.ADDRCPT:
      case Response.ADDRCPT_PAR:
        result.recipients.push(frame.data.toString('latin1').split('\0')[0]?.replace(/^<|>$/g, '') ?? '');
        break;
      case Response.DELRCPT: {
        const gone = frame.data.toString('latin1').split('\0')[0]?.replace(/^<|>$/g, '');
        result.recipients = result.recipients.filter((r) => r !== gone);
        break;
      }
      case Response.CHGFROM:
        result.sender = frame.data.toString('latin1').split('\0')[0]?.replace(/^<|>$/g, '') ?? '';
        break;
      case Response.QUARANTINE:
        result.quarantine = frame.data.toString('latin1').replace(/\0$/, '');
        break;
      case Response.PROGRESS:
        // Only restarts the MTA's clock.
        break;
      default:
        recordVerdict(frame, result);
    }
  }
  if (result.verdict === 'continue' || result.verdict === 'accept') {
    const head = headers.map(([name, value]) => `${name}:${value.replace(/\r?\n/g, '\r\n')}\r\n`).join('');
    result.delivered = Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), replaced ? Buffer.concat(bodyParts) : body]);
  }
  return result;
}

