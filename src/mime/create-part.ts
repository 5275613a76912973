import { randomBytes } from 'node:crypto';
import { isMediaType } from './content-type.js';
import { Header } from './header.js';
import { MimePart } from './part.js';
import { DETACHED_CONTEXT } from './decode-context.js';

export interface CreatePartOptions {
  /** "type/subtype"; a multipart/* type makes an empty container to `append` parts to. */
  contentType: string;
  /** The content of a leaf (string: written as UTF-8). */
  content?: Uint8Array | string;
  filename?: string;
  /** Extra header fields, written before the Content-* ones. */
  headers?: Record<string, string>;
}

/** A new part that belongs to no message yet: insert it with replaceWith or append. */
export function createPart(options: CreatePartOptions): MimePart {
  const type = options.contentType.trim().toLowerCase();
  if (!isMediaType(type)) throw new TypeError(`createPart: "${options.contentType}" is not a type/subtype`);
  const fields = Object.entries(options.headers ?? {}).map(([name, value]) => Header.generated(name, value, DETACHED_CONTEXT));
  if (type.startsWith('multipart/')) {
    // A boundary that cannot occur in base64 or quoted-printable text of the parts.
    const boundary = `=_milterkit_${randomBytes(12).toString('hex')}`;
    fields.push(Header.generated('Content-Type', `${type}; boundary="${boundary}"`, DETACHED_CONTEXT));
    const part = new MimePart({ kind: 'multipart', fields, layout: undefined, log: undefined });
    part.boundary = boundary;
    return part;
  }
  const part = new MimePart({ kind: 'leaf', fields, layout: undefined, log: undefined });
  part.setContent(options.content ?? '', { contentType: type, filename: options.filename ?? null });
  return part;
}
