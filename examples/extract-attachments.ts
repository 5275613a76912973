/**
 * Writes every attachment of a message (an .eml file, or each message of an mbox) to a folder, with the
 * sender's file name made safe. The MIME tree used on its own, outside mail filtering.
 *
 *   tsx examples/extract-attachments.ts INPUT OUT_DIR
 */
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { extname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMbox, parseMessage, splitMbox, toSafeFilename, type MimePart } from '../src/index.js';

/** A leaf the sender meant as a file: it has a name, says so, or is not text. */
function isAttachment(part: MimePart): boolean {
  if (part.kind !== 'leaf') return false;
  return part.filename !== undefined || part.disposition === 'attachment' || !part.contentType.startsWith('text/');
}

/** `name`, or `name (2).ext`, `name (3).ext`... whichever does not exist yet. */
function freePath(dir: string, name: string): string {
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  let candidate = join(dir, name);
  for (let n = 2; existsSync(candidate); n++) candidate = join(dir, `${stem} (${n})${ext}`);
  return candidate;
}

export function extractAttachments(input: Buffer, outDir: string): string[] {
  mkdirSync(outDir, { recursive: true });
  const written: string[] = [];
  const messages = isMbox(input) ? splitMbox(input) : [input];
  messages.forEach((bytes, index) => {
    for (const part of parseMessage(bytes).walk()) {
      if (!isAttachment(part)) continue;
      const fallback = `message${index + 1}-part${part.path || '0'}.bin`;
      const path = freePath(outDir, toSafeFilename(part.filename, fallback));
      writeFileSync(path, part.content());
      written.push(path);
    }
  });
  return written;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [input, outDir] = process.argv.slice(2);
  if (!input || !outDir) {
    console.error('usage: extract-attachments INPUT OUT_DIR');
    process.exit(2);
  }
  for (const path of extractAttachments(readFileSync(input), outDir)) console.log(path);
}
