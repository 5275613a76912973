import { formatField, type Header } from '../mime/header.js';
import type { MimeMessage } from '../mime/message.js';
import { parseBlocks } from '../mime/parse.js';
import { bodyChunks } from '../mime/serializer.js';
import { BodyBuffer } from './body-buffer.js';
import type { ChangeSet, FilterFactory, MilterFilter, Verdict } from './filter.js';

/** The envelope of the message being filtered. */
export interface Envelope {
  sender: string;
  recipients: string[];
  /**
   * Connection facts for logs and policies, from the macros sent with MAIL FROM: the client's IP address
   * ({client_addr}), and its HELO name where the MTA has a macro for it (Sendmail's `s`; Postfix has none).
   */
  client: { address: string | undefined; helo: string | undefined };
  queueId: string | undefined;
}

/**
 * A whole-message transform: it may change the parsed message in place, and says what becomes of it.
 * `quarantine` holds the message (with its reason) after applying the changes.
 */
export type TransformResult = { action: 'accept' } | { action: 'quarantine'; reason: string } | { action: 'reject' | 'tempfail'; reply?: string } | { action: 'discard' };
/** `signal`: aborted when the message's time is up or the MTA has gone (see MilterFilter.eom). */
export type MessageTransform = ((message: MimeMessage, envelope: Envelope, signal: AbortSignal) => TransformResult | Promise<TransformResult>) & {
  /**
   * Called at the first recipient the MTA accepts, when the sender is known and the message is not: work
   * that can start early (a callback probe) overlaps with the transfer of the message. Not at MAIL FROM:
   * the MTA has not yet checked recipients and relaying then, and any client could set probes going.
   * Not waited for.
   */
  begin?(envelope: Readonly<Envelope>): void;
  /**
   * Called at each RCPT TO, before the message: a reject or tempfail refuses that recipient with its
   * reply. Having it makes the MTA wait for an answer to every RCPT.
   */
  recipient?(envelope: Readonly<Envelope>, recipient: string): RecipientResult | Promise<RecipientResult>;
  /**
   * Told of a message over `maxMessageBytes`, which the adapter answers by itself (it was neither kept
   * nor parsed), for the log: `size` is every header and body byte that came.
   */
  oversize?(envelope: Readonly<Envelope>, size: number, action: OversizeAction): void;
};
/** What becomes of a message over `maxMessageBytes`: refused (552 5.3.4), or passed on unfiltered. */
export type OversizeAction = 'reject' | 'accept';
export const OVERSIZE_REPLY = '552 5.3.4 Message too big for the content filter';
/** What becomes of one recipient: undefined lets it through. */
export type RecipientResult = Extract<TransformResult, { action: 'reject' | 'tempfail' }> | undefined;

/**
 * The engine-agnostic adapter: collects the headers and body chunks of a message, hands the whole message to
 * a transform at end of message, and turns what the transform changed into the smallest set of milter
 * changes — header adds, changes and deletes, and a body replacement only when the body changed. A
 * message the transform did not change gets no modification at all.
 */
export interface AdapterOptions {
  /** Body bytes kept in memory per message; beyond, the body goes to a temporary file. Default 8 MiB. */
  memoryThresholdBytes?: number;
  /** Where such files go. Default os.tmpdir(). */
  temporaryDirectory?: string;
  /**
   * The largest message (header and body bytes) kept and filtered. Past it the message is dropped at
   * once and answered with `oversizeAction`: a body is read back into memory whole at end of message,
   * and Sendmail sets no size limit by default. Default 64 MiB.
   */
  maxMessageBytes?: number;
  /** Default 'reject': mail the filter could not look at does not pass. */
  oversizeAction?: OversizeAction;
}

/**
 * The macros the adapter asks for at MAIL FROM: the client's address and name, its HELO name (Sendmail),
 * and the queue ID where it is known by then (Sendmail; Postfix gives it at end of message).
 */
const MAIL_MACROS = ['{client_addr}', '{client_name}', 's', 'i'] as const;

/** What the adapter holds of the message in progress. */
interface MessageInProgress {
  headers: [string, Buffer][];
  body: BodyBuffer;
  envelope: Envelope;
  /** Header and body bytes received. */
  size: number;
  /** Past maxMessageBytes: nothing more is kept. */
  oversize: boolean;
}

export function messageFilter(transform: MessageTransform, options: AdapterOptions = {}): FilterFactory {
  return (context): MilterFilter => {
    // One per message, never reused: an end of message that outlives its timeout (the MTA has had the
    // fallback and gone on to the next message) keeps working on its own body and envelope.
    let message: MessageInProgress | undefined;
    const maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
    const oversizeAction = options.oversizeAction ?? 'reject';
    const begin = (sender: string): MessageInProgress => ({
      headers: [],
      body: new BodyBuffer(options.memoryThresholdBytes ?? 8 * 1024 * 1024, options.temporaryDirectory),
      envelope: { sender, recipients: [], client: { address: context.macro('{client_addr}'), helo: context.macro('s') }, queueId: undefined },
      size: 0,
      oversize: false,
    });
    /** Adds to the message's size; the first time it passes the limit, drops what was kept. */
    const count = (m: MessageInProgress, bytes: number): void | Promise<void> => {
      m.size += bytes;
      if (m.oversize || m.size <= maxMessageBytes) return;
      m.oversize = true;
      m.headers = [];
      return m.body.discard();
    };
    // MAIL is always negotiated (the adapter has its hook): this only covers an MTA that skips it anyway.
    const current = (): MessageInProgress => (message ??= begin(''));
    const drop = (): void | Promise<void> => {
      const dropped = message;
      message = undefined;
      return dropped?.body.discard();
    };
    return {
      // Every hook before end of message only collects: the MTA need not wait for any of them — but for
      // RCPT when the transform may refuse recipients.
      noReply: transform.recipient ? ['envFrom', 'header', 'body'] : ['envFrom', 'envRcpt', 'header', 'body'],
      // No connect or helo hook: what the envelope needs of the connection comes with MAIL FROM, and
      // the MTA is spared two events per connection (measured: a fifth more messages/s at 2 KB).
      macros: { envFrom: [...MAIL_MACROS], eom: ['i'] },
      // What applyTransform may send: header edits, the body, quarantine — never the envelope.
      actions: ['addHeader', 'changeHeader', 'deleteHeader', 'replaceBody', 'quarantine'],
      envFrom(sender) {
        const previous = drop();
        message = begin(sender);
        return previous;
      },
      envRcpt(recipient, _args, signal) {
        const { envelope } = current();
        const admit = (refused: RecipientResult): Verdict => {
          if (refused) return refused.reply ? { reply: refused.reply } : refused.action;
          // Too late: the MTA has the fallback for this recipient, which is not one of the message's.
          if (signal?.aborted) return 'continue';
          envelope.recipients.push(recipient);
          if (envelope.recipients.length === 1) transform.begin?.(envelope);
          return 'continue';
        };
        // Only a recipient check that is waited for makes a promise (and the session's timer for it).
        const refused = transform.recipient?.(envelope, recipient);
        return typeof (refused as PromiseLike<RecipientResult> | undefined)?.then === 'function' ? Promise.resolve(refused).then(admit) : admit(refused as RecipientResult);
      },
      header(name, value) {
        const m = current();
        const dropped = count(m, name.length + value.length + 3);
        if (m.oversize) return dropped;
        m.headers.push([name, value]);
      },
      body(chunk) {
        const m = current();
        const dropped = count(m, chunk.length);
        return m.oversize ? dropped : m.body.push(chunk);
      },
      async eom(changes, signal) {
        const { headers, body, envelope, size, oversize } = current();
        message = undefined;
        envelope.queueId = context.macro('i');
        if (oversize) {
          transform.oversize?.(envelope, size, oversizeAction);
          return oversizeAction === 'accept' ? 'continue' : { reply: OVERSIZE_REPLY };
        }
        return applyTransform(headers, await body.take(), envelope, transform, changes, signal);
      },
      abort: drop,
      close: drop,
    };
  };
}

/** The header block as the MTA holds it: values arrive verbatim (HDR_LEADSPC) with LF folding. */
function headerBlock(headers: readonly [string, Buffer][]): Buffer {
  const lines = headers.map(([name, value]) => Buffer.concat([Buffer.from(`${name}:`, 'latin1'), Buffer.from(value.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1'), Buffer.from('\r\n')]));
  return Buffer.concat([...lines, Buffer.from('\r\n')]);
}

/**
 * Whether two lists of buffers hold the same bytes, compared in place (no joining). An unchanged body
 * comes back as views of the very memory it was parsed from: those stretches are equal without reading
 * them (at 1 MB the comparison was a cold pass over the whole body).
 */
function sameBytes(a: readonly Buffer[], b: readonly Buffer[]): boolean {
  let i = 0;
  let j = 0;
  let offsetA = 0;
  let offsetB = 0;
  for (;;) {
    while (i < a.length && offsetA === (a[i] as Buffer).length) (i++, (offsetA = 0));
    while (j < b.length && offsetB === (b[j] as Buffer).length) (j++, (offsetB = 0));
    if (i === a.length || j === b.length) return i === a.length && j === b.length;
    const x = a[i] as Buffer;
    const y = b[j] as Buffer;
    const n = Math.min(x.length - offsetA, y.length - offsetB);
    const sameMemory = x.buffer === y.buffer && x.byteOffset + offsetA === y.byteOffset + offsetB;
    if (!sameMemory && x.compare(y, offsetB, offsetB + n, offsetA, offsetA + n) !== 0) return false;
    offsetA += n;
    offsetB += n;
  }
}

/** A generated field's value as the milter protocol wants it: after "Name:", folded with LF only. */
function milterValue(header: Header): string {
  const field = formatField(header.name, header.value, '\n');
  return field.slice(header.name.length + 1).replace(/\n$/, '').replace(/^ /, '');
}

/**
 * The header edits that turn `before` (the fields as the MTA sent them) into `after` (as the transform
 * left them), in milter terms. A new field in the place of a removed one of that name (`headers.set`)
 * changes it; a new field above every field that stays goes on top (a prepended trace or
 * Authentication-Results field, the forged one removed); any other new field goes at the end: where
 * between the original fields the MTA would put it, a milter cannot know.
 */
function sendHeaderChanges(before: readonly Header[], after: readonly Header[], changes: ChangeSet): void {
  const original = new Set(before);
  const kept = new Set(after.filter((header) => original.has(header)));
  // A field's place: how many kept originals are above it (a removed original: where it was).
  const places = (fields: readonly Header[]): number[] => {
    let above = 0;
    return fields.map((header) => (kept.has(header) ? above++ : above));
  };
  // Removed originals, numbered per name as the MTA sent them (the index CHGHEADER uses).
  const removed: { header: Header; index: number; place: number }[] = [];
  const seen = new Map<string, number>();
  const beforePlaces = places(before);
  before.forEach((header, i) => {
    const index = (seen.get(header.key) ?? 0) + 1;
    seen.set(header.key, index);
    if (!kept.has(header)) removed.push({ header, index, place: beforePlaces[i] as number });
  });
  const afterPlaces = places(after);
  const fresh: { header: Header; position: number }[] = [];
  const settled: number[] = [];
  after.forEach((header, position) => {
    if (kept.has(header)) return void settled.push(position);
    if (header.isInvalid) return;
    const slot = removed.findIndex((r) => r.header.key === header.key && r.place === afterPlaces[position]);
    if (slot < 0) return void fresh.push({ header, position });
    const { index } = removed.splice(slot, 1)[0] as { index: number };
    changes.changeHeader(header.name, index, milterValue(header));
    settled.push(position);
  });
  const firstSettled = settled.length > 0 ? Math.min(...settled) : -1;
  const onTop = fresh.filter(({ position }) => position < firstSettled).map(({ header }) => header);
  for (const { header, position } of fresh) if (!(position < firstSettled)) changes.addHeader(header.name, milterValue(header));
  // Each at index 0, last first: Postfix's index 1 is below the Received: field it adds itself.
  for (const header of onTop.reverse()) changes.insertHeader(0, header.name, milterValue(header));
  for (const { header, index } of removed) changes.deleteHeader(header.name, index);
}

async function applyTransform(
  headers: readonly [string, Buffer][],
  body: readonly Buffer[],
  envelope: Envelope,
  transform: MessageTransform,
  changes: ChangeSet,
  signal: AbortSignal,
): Promise<Verdict> {
  // Parsed from the blocks as they are: the body is held once, however big.
  const message = parseBlocks([headerBlock(headers), ...body]);
  const before = [...message.root.headers];
  const result = await transform(message, envelope, signal);
  if (result.action === 'reject' || result.action === 'tempfail') return result.reply ? { reply: result.reply } : result.action;
  if (result.action === 'discard') return 'discard';
  sendHeaderChanges(before, [...message.root.headers], changes);
  const newBody = bodyChunks(message.root);
  if (!sameBytes(newBody, body)) changes.replaceBody(Buffer.concat(newBody));
  if (result.action === 'quarantine') changes.quarantine(result.reason);
  return 'continue';
}
