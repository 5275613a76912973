import { isUtf8 } from 'node:buffer';
import libmime from 'libmime';
import { simpleParser } from 'mailparser';
import { isKnownCharset } from '../../src/mime/charset.js';
import { parseMessage, type MimePart } from '../../src/index.js';

/**
 * mailparser as an independent oracle: what it decodes must be what we decode. Differences that are
 * deliberate are listed here and nowhere else:
 * - undeclared, ASCII-declared or unknown-charset 8-bit text that is not UTF-8: mailparser decodes it as
 *   UTF-8 and gets U+FFFD; we use the fallback charset (windows-1252), as mail clients guess;
 * - mailparser renames repeated attachment names (`spacer(1).gif`); we report names as written;
 * - multipart/report: mailparser appends the delivery-status part to `text`; we keep parts apart;
 * - mailparser joins the inline parts of a message with line breaks and turns CRLF into LF (once) in
 *   `text`; we keep line endings and parts as they are, so ours gets the same treatment and both are
 *   compared trimmed;
 * - format=flowed is a presentation layer: our text() is the decoded body, so the oracle's flowed
 *   joining is applied to our text (with libmime.decodeFlowed) before comparing.
 */
export interface Disagreement {
  what: 'attachment-missing' | 'attachment-name' | 'text';
  detail: string;
}

const ASCII_LABELS = new Set([undefined, 'us-ascii', 'ascii']);

function textOf(part: MimePart): string {
  const text = part.text();
  if (part.contentTypeParams.get('format')?.toLowerCase() !== 'flowed') return text;
  return libmime.decodeFlowed(text, part.contentTypeParams.get('delsp')?.toLowerCase() === 'yes');
}

function isDeliberateTextDifference(part: MimePart): boolean {
  const label = part.charset;
  return (ASCII_LABELS.has(label) || !isKnownCharset(label as string)) && !isUtf8(part.content());
}

export async function compareWithMailparser(bytes: Buffer): Promise<Disagreement[]> {
  const oracle = await simpleParser(bytes, { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true });
  const msg = parseMessage(bytes);
  const parts = [...msg.walk()];
  const found: Disagreement[] = [];
  for (const attachment of oracle.attachments) {
    const match = parts.find((p) => p.kind !== 'multipart' && p.content().equals(attachment.content));
    if (!match) found.push({ what: 'attachment-missing', detail: `${attachment.contentType} ${attachment.filename ?? ''} ${attachment.size} B` });
    else if ((attachment.filename ?? undefined) !== match.filename && attachment.filename?.replace(/\(\d+\)(?=\.[^.]*$|$)/, '') !== match.filename) {
      found.push({ what: 'attachment-name', detail: `${String(attachment.filename)} vs ${String(match.filename)}` });
    }
  }
  const texts = parts.filter((p) => p.kind === 'leaf' && p.contentType === 'text/plain' && p.disposition !== 'attachment');
  const only = texts[0];
  if (texts.length === 1 && only && oracle.text !== undefined && msg.root.contentType !== 'multipart/report' && !isDeliberateTextDifference(only)) {
    const ours = textOf(only).replace(/\r\n/g, '\n').trim();
    const theirs = oracle.text.trim();
    if (ours !== theirs) {
      let i = 0;
      while (i < ours.length && ours[i] === theirs[i]) i++;
      found.push({ what: 'text', detail: `${JSON.stringify(ours.slice(i, i + 40))} vs ${JSON.stringify(theirs.slice(i, i + 40))}` });
    }
  }
  return found;
}
