/**
 * mbox files (mboxo and mboxrd, as written by Postfix's local(8), mutt, Thunderbird): messages separated
 * by lines starting with "From ". The separators are dropped, the blank line an mbox writer puts between
 * messages is removed, and mboxrd quoting (">From " for a body line "From ") is undone.
 */
export function isMbox(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.buffer, bytes.byteOffset, Math.min(5, bytes.byteLength)).toString('latin1') === 'From ';
}

const SEPARATOR = Buffer.from('\nFrom ');
const QUOTED_FROM = /^>(>*From )/gm;

export function splitMbox(bytes: Uint8Array): Buffer[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const messages: Buffer[] = [];
  let pos = isMbox(buf) ? 0 : -1;
  if (pos < 0) {
    // Not an mbox: text before the first separator line would be lost, so take it all as one message.
    return buf.length > 0 ? [buf] : [];
  }
  while (pos < buf.length) {
    const lineEnd = buf.indexOf(0x0a, pos);
    if (lineEnd < 0) break;
    const next = buf.indexOf(SEPARATOR, lineEnd);
    let end = next < 0 ? buf.length : next + 1;
    const body = buf.subarray(lineEnd + 1, end);
    // The writer's blank line before the next separator is not part of the message.
    if (body.length >= 2 && body[body.length - 1] === 0x0a) {
      const crlf = body[body.length - 2] === 0x0d;
      const before = body.length - (crlf ? 2 : 1);
      if (body[before - 1] === 0x0a) end -= crlf ? 2 : 1;
    }
    const raw = buf.subarray(lineEnd + 1, end);
    const text = raw.toString('latin1');
    messages.push(QUOTED_FROM.test(text) ? Buffer.from(text.replace(QUOTED_FROM, '$1'), 'latin1') : raw);
    QUOTED_FROM.lastIndex = 0;
    if (next < 0) break;
    pos = next + 1;
  }
  return messages;
}
