import { encodeContent } from './encodings/transfer-encoding.js';
import type { MimePart } from './part.js';

/**
 * Writes a tree back to bytes. An unchanged part is one view of its source; a changed one is reassembled
 * from its pieces, each still a view unless it was changed. The walk uses an explicit stack: a tree may
 * be as deep as `maxDepth` allows, far beyond what recursion survives.
 */
type Piece = Buffer | MimePart;

function appendHeaderPieces(part: MimePart, pieces: Piece[], bodyIsEmpty: boolean): void {
  const layout = part.layout;
  const eol = part.effectiveEol;
  if (layout) layout.source.appendViews(layout.start, layout.prefixEnd, pieces);
  let fieldCount = 0;
  let lastEndsLine = true;
  for (const header of part.headers) {
    // A parsed last field may lack its line break (a message of headers only): a field added after it
    // must not end up on the same line.
    if (!lastEndsLine) pieces.push(Buffer.from(eol, 'latin1'));
    const before = pieces.length;
    header.appendTo(pieces, eol);
    const last = pieces[pieces.length - 1] as Buffer;
    lastEndsLine = pieces.length === before || last.length === 0 || last[last.length - 1] === 0x0a || last[last.length - 1] === 0x0d;
    fieldCount++;
  }
  if (layout) {
    if (layout.overflowStart !== undefined) layout.source.appendViews(layout.overflowStart, layout.separatorStart, pieces);
    if (layout.separatorStart < layout.bodyStart) layout.source.appendViews(layout.separatorStart, layout.bodyStart, pieces);
    else if (!bodyIsEmpty && fieldCount > 0) pieces.push(Buffer.from(lastEndsLine ? eol : eol + eol, 'latin1'));
  } else pieces.push(Buffer.from(eol, 'latin1'));
}

function appendBodyPieces(part: MimePart, pieces: Piece[]): void {
  const layout = part.layout;
  const eol = part.effectiveEol;
  if (part.newBody) {
    pieces.push(part.encodedNewBody(eol));
    return;
  }
  const children = part.children;
  if (part.kind === 'leaf' || (part.kind === 'message' && children.length === 0)) {
    if (layout) layout.source.appendViews(layout.bodyStart, layout.end, pieces);
    return;
  }
  if (part.kind === 'message') {
    const message = children[0] as MimePart;
    if (!part.encodedMessage) pieces.push(message);
    else if (layout && !message.dirty) layout.source.appendViews(layout.bodyStart, layout.end, pieces);
    else {
      const encoding = part.transferEncoding === 'quoted-printable' ? 'quoted-printable' : 'base64';
      pieces.push(encodeContent(serializePart(message), encoding, eol));
    }
    return;
  }
  const boundary = part.boundary as string;
  if (layout) layout.source.appendViews(layout.bodyStart, layout.preambleEnd, pieces);
  const preambleEmpty = !layout || layout.preambleEnd === layout.bodyStart;
  children.forEach((child, i) => {
    if (child.delimiter && layout) layout.source.appendViews(child.delimiter.start, child.delimiter.end, pieces);
    else pieces.push(Buffer.from(`${i === 0 && preambleEmpty ? '' : eol}--${boundary}${eol}`, 'latin1'));
    pieces.push(child);
  });
  if (layout) {
    if (layout.close) layout.source.appendViews(layout.close.start, layout.close.end, pieces);
    layout.source.appendViews(layout.epilogueStart, layout.end, pieces);
  } else pieces.push(Buffer.from(`${eol}--${boundary}--${eol}`, 'latin1'));
}

function isBodyEmpty(part: MimePart): boolean {
  if (part.newBody) return part.newBody.data.length === 0;
  if (part.kind !== 'leaf') return false;
  return !part.layout || part.layout.end === part.layout.bodyStart;
}

function expand(initial: Piece[], out: Buffer[]): void {
  const stack = initial.reverse();
  while (stack.length > 0) {
    const item = stack.pop() as Piece;
    if (Buffer.isBuffer(item)) {
      out.push(item);
      continue;
    }
    const layout = item.layout;
    if (layout && !item.dirty) {
      layout.source.appendViews(layout.start, layout.end, out);
      continue;
    }
    const pieces: Piece[] = [];
    appendHeaderPieces(item, pieces, isBodyEmpty(item));
    appendBodyPieces(item, pieces);
    for (let i = pieces.length - 1; i >= 0; i--) stack.push(pieces[i] as Piece);
  }
}

/** The serialized part as a list of buffers (views of the source wherever nothing changed). */
export function partChunks(part: MimePart): Buffer[] {
  const out: Buffer[] = [];
  expand([part], out);
  return out;
}

function join(chunks: Buffer[]): Buffer {
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}

export function serializePart(part: MimePart): Buffer {
  return join(partChunks(part));
}

/** The body as transported, as buffers: views of the source wherever nothing changed. */
export function bodyChunks(part: MimePart): Buffer[] {
  const layout = part.layout;
  const out: Buffer[] = [];
  if (layout && !part.dirty) {
    layout.source.appendViews(layout.bodyStart, layout.end, out);
    return out;
  }
  const pieces: Piece[] = [];
  appendBodyPieces(part, pieces);
  expand(pieces, out);
  return out;
}

/** The body as transported (still transfer-encoded). */
export function serializeBody(part: MimePart): Buffer {
  const layout = part.layout;
  if (layout && !part.dirty) return layout.source.slice(layout.bodyStart, layout.end);
  return join(bodyChunks(part));
}
