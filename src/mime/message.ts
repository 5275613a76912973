import type { Writable } from 'node:stream';
import { once } from 'node:events';
import type { Defect } from './defects.js';
import type { ResolvedParseOptions } from './options.js';
import type { MimePart, RootHolder } from './part.js';
import { partChunks } from './serializer.js';

/** A parsed message: the tree, its defects, and serialization. */
export class MimeMessage implements RootHolder {
  root: MimePart;
  readonly options: ResolvedParseOptions;
  private readonly defectList: Defect[];

  /** @internal Use parseMessage. */
  constructor(root: MimePart, defects: Defect[], options: ResolvedParseOptions) {
    this.root = root;
    root.holder = this;
    this.defectList = defects;
    this.options = options;
  }

  /** Typed defects found so far (parsing, plus any lazy decoding done since). */
  get defects(): readonly Defect[] {
    return this.defectList;
  }

  get headers(): MimePart['headers'] {
    return this.root.headers;
  }

  /** Every part, depth-first, root first, into embedded messages too. */
  walk(): Generator<MimePart> {
    return this.root.walk();
  }

  /** The part with this path ("" is the root), or undefined. */
  part(path: string): MimePart | undefined {
    let node: MimePart | undefined = this.root;
    if (path === '') return node;
    for (const n of path.split('.')) {
      const index = Number(n) - 1;
      node = Number.isInteger(index) ? node?.children[index] : undefined;
      if (!node) return undefined;
    }
    return node;
  }

  /** The serialized message as buffers: views of the source wherever nothing changed. */
  chunks(): Buffer[] {
    return partChunks(this.root);
  }

  /** The serialized message. Untouched, it is byte-identical to the input and may share its memory. */
  toBuffer(): Buffer {
    const chunks = this.chunks();
    return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
  }

  /** Streams the serialized message, honouring back-pressure; nothing is copied that did not change. */
  async writeTo(out: Writable): Promise<void> {
    for (const chunk of this.chunks()) {
      if (!out.write(chunk)) await once(out, 'drain');
    }
  }
}

