import { parseFile, parseStream } from '../mime/index.js';
import type { MimePart } from '../mime/index.js';

/** One row of `milterkit inspect`. */
export interface PartSummary {
  path: string;
  depth: number;
  contentType: string;
  kind: MimePart['kind'];
  /** Body bytes as transported (encoded). */
  size: number;
  /** Body bytes once transfer-decoded (leaves only). */
  decodedSize: number | undefined;
  filename: string | undefined;
  filenames: string[];
  disposition: string | undefined;
  charset: string | undefined;
  transferEncoding: string;
}

function depthOf(part: MimePart): number {
  let depth = 0;
  for (let p = part.parent; p; p = p.parent) depth++;
  return depth;
}

export function summarize(part: MimePart): PartSummary {
  return {
    path: part.path,
    depth: depthOf(part),
    contentType: part.contentType,
    kind: part.kind,
    size: part.size,
    decodedSize: part.kind === 'leaf' ? part.content().length : undefined,
    filename: part.filename,
    filenames: part.filenames,
    disposition: part.disposition,
    charset: part.charset,
    transferEncoding: part.transferEncoding,
  };
}

/** Makes attacker-chosen names safe to print on a terminal: control and bidi characters escaped. */
function printable(text: string): string {
  return JSON.stringify(text).replace(/[\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export async function inspectCommand(args: string[], out: (line: string) => void): Promise<number> {
  const json = args.includes('--json');
  const files = args.filter((a) => a !== '--json');
  if (files.length !== 1) {
    out('usage: milterkit inspect FILE|- [--json]');
    return 2;
  }
  const file = files[0] as string;
  const msg = file === '-' ? await parseStream(process.stdin) : await parseFile(file);
  const parts = [...msg.walk()].map(summarize);
  if (json) {
    out(JSON.stringify({ parts, defects: msg.defects }, null, 2));
    return 0;
  }
  for (const p of parts) {
    const label = p.path === '' ? '(root)' : p.path;
    const name = p.filename === undefined ? '' : `  ${printable(p.filename)}`;
    const size = p.decodedSize === undefined ? `${p.size} B` : `${p.size} B (decoded ${p.decodedSize} B)`;
    out(`${'  '.repeat(p.depth)}${label}  ${p.contentType}  ${size}${name}`);
  }
  if (msg.defects.length > 0) {
    out('defects:');
    for (const d of msg.defects) {
      out(`  ${d.code} at ${d.path === '' ? '(root)' : d.path}, offset ${d.offset}${d.detail === undefined ? '' : ` (${printable(d.detail)})`}`);
    }
  }
  return 0;
}
