import { parseBlocks } from '../mime/parse.js';
import { bodyChunks } from '../mime/serializer.js';
import type { ChangeSet } from './filter.js';
import { sendHeaderChanges } from './header-diff.js';
import type { Edit, Envelope, MessageOutcome, MessageTransform } from './message-work.js';

/** The header block as the MTA holds it: values arrive verbatim (HDR_LEADSPC) with LF folding. */
export function headerBlock(headers: readonly [string, Buffer][]): Buffer {
  const lines = headers.map(([name, value]) => Buffer.concat([Buffer.from(`${name}:`, 'latin1'), Buffer.from(value.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1'), Buffer.from('\r\n')]));
  return Buffer.concat([...lines, Buffer.from('\r\n')]);
}

/**
 * Whether two lists of buffers hold the same bytes, compared in place (no joining). An unchanged body
 * comes back as views of the very memory it was parsed from: those stretches are equal without reading
 * them (at 1 MB the comparison was a cold pass over the whole body).
 */
function sameBytes(a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean {
  let i = 0;
  let j = 0;
  let offsetA = 0;
  let offsetB = 0;
  for (;;) {
    while (i < a.length && offsetA === (a[i] as Uint8Array).length) (i++, (offsetA = 0));
    while (j < b.length && offsetB === (b[j] as Uint8Array).length) (j++, (offsetB = 0));
    if (i === a.length || j === b.length) return i === a.length && j === b.length;
    const x = a[i] as Uint8Array;
    const y = b[j] as Uint8Array;
    const n = Math.min(x.length - offsetA, y.length - offsetB);
    const sameMemory = x.buffer === y.buffer && x.byteOffset + offsetA === y.byteOffset + offsetB;
    if (!sameMemory && Buffer.compare(x.subarray(offsetA, offsetA + n), y.subarray(offsetB, offsetB + n)) !== 0) return false;
    offsetA += n;
    offsetB += n;
  }
}

/**
 * Blocks joined into memory of their own. Not Buffer.concat: a short result would be a slice of node's
 * shared allocation pool, which must never be handed (transferred) to another thread.
 */
export function joinUnshared(blocks: readonly Uint8Array[]): Buffer {
  const out = Buffer.from(new ArrayBuffer(blocks.reduce((n, block) => n + block.length, 0)));
  let at = 0;
  for (const block of blocks) {
    out.set(block, at);
    at += block.length;
  }
  return out;
}

/** A ChangeSet that writes the calls down as data. */
function editList(): { changes: ChangeSet; edits: Edit[] } {
  const edits: Edit[] = [];
  const record =
    <K extends keyof ChangeSet>(change: K) =>
    (...args: Parameters<ChangeSet[K]>): void =>
      void edits.push({ change, args } as Edit);
  const changes: ChangeSet = {
    addHeader: record('addHeader'),
    insertHeader: record('insertHeader'),
    changeHeader: record('changeHeader'),
    deleteHeader: record('deleteHeader'),
    replaceBody: record('replaceBody'),
    addRecipient: record('addRecipient'),
    deleteRecipient: record('deleteRecipient'),
    changeSender: record('changeSender'),
    quarantine: record('quarantine'),
  };
  return { changes, edits };
}

/** Makes the calls that edits wrote down (a body that crossed threads as a plain Uint8Array is a Buffer again). */
export function applyEdits(edits: readonly Edit[], changes: ChangeSet): void {
  for (const edit of edits) {
    if (edit.change === 'replaceBody') {
      const body: Uint8Array = edit.args[0];
      changes.replaceBody(Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
    } else (changes[edit.change] as (...args: unknown[]) => void)(...edit.args);
  }
}

/**
 * The work on one message, wherever it runs: parse the header block and body blocks (held as they are,
 * never joined), let the transform change the message, and turn what it changed into the smallest set of
 * milter changes — header adds, changes and deletes, and a body replacement only when the body changed.
 * A message the transform did not change gets no edit at all.
 */
export async function transformMessage(blocks: readonly Uint8Array[], envelope: Envelope, transform: MessageTransform, signal: AbortSignal): Promise<MessageOutcome> {
  const message = parseBlocks(blocks);
  const before = [...message.root.headers];
  const result = await transform(message, envelope, signal);
  if (result.action === 'reject' || result.action === 'tempfail') return { verdict: result.reply ? { reply: result.reply } : result.action, edits: [] };
  if (result.action === 'discard') return { verdict: 'discard', edits: [] };
  const { changes, edits } = editList();
  sendHeaderChanges(before, [...message.root.headers], changes);
  const newBody = bodyChunks(message.root);
  if (!sameBytes(newBody, blocks.slice(1))) changes.replaceBody(joinUnshared(newBody));
  if (result.action === 'quarantine') changes.quarantine(result.reason);
  return { verdict: 'continue', edits };
}
