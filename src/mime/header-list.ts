import type { DecodeContext } from './decode-context.js';
import { Header } from './header.js';

/**
 * The ordered header fields of one part; duplicates are kept. Reads decode lazily; every change is
 * reported to the owning part so that only the header block it belongs to is written anew, and in it
 * only the changed fields are generated: the others are copied byte for byte.
 */
export class HeaderList implements Iterable<Header> {
  private fields: Header[];
  private readonly ctx: DecodeContext;
  private readonly onChange: () => void;

  constructor(fields: Header[], ctx: DecodeContext, onChange: () => void) {
    this.fields = fields;
    this.ctx = ctx;
    this.onChange = onChange;
  }

  /** @internal The parser fills the list once the part exists (fields decode through the part). */
  load(fields: Header[]): void {
    this.fields = fields;
  }

  get length(): number {
    return this.fields.length;
  }

  [Symbol.iterator](): Iterator<Header> {
    return this.fields[Symbol.iterator]();
  }

  /** The first field with this name (case-insensitive). */
  getHeader(name: string): Header | undefined {
    const key = name.toLowerCase();
    return this.fields.find((h) => h.key === key);
  }

  getHeaders(name: string): Header[] {
    const key = name.toLowerCase();
    return this.fields.filter((h) => h.key === key);
  }

  has(name: string): boolean {
    return this.getHeader(name) !== undefined;
  }

  /** Decoded value of the first field with this name. */
  get(name: string): string | undefined {
    return this.getHeader(name)?.value;
  }

  /** Decoded values of every field with this name, in order. */
  getAll(name: string): string[] {
    return this.getHeaders(name).map((h) => h.value);
  }

  /** Replaces the first field with this name (in place) and removes the others; appends when absent. */
  set(name: string, value: string): void {
    const key = name.toLowerCase();
    const replacement = Header.generated(name, value, this.ctx);
    let placed = false;
    const next: Header[] = [];
    for (const h of this.fields) {
      if (h.key !== key) next.push(h);
      else if (!placed) {
        next.push(replacement);
        placed = true;
      }
    }
    if (!placed) next.push(replacement);
    this.fields = next;
    this.onChange();
  }

  /** Adds a field at the end, or at the top with `prepend` (where trace fields such as Received go). */
  add(name: string, value: string, options: { prepend?: boolean } = {}): void {
    const header = Header.generated(name, value, this.ctx);
    if (options.prepend) this.fields.unshift(header);
    else this.fields.push(header);
    this.onChange();
  }

  /** Removes every field with this name; returns how many were removed. */
  remove(name: string): number {
    const key = name.toLowerCase();
    const before = this.fields.length;
    this.fields = this.fields.filter((h) => h.key !== key);
    const removed = before - this.fields.length;
    if (removed > 0) this.onChange();
    return removed;
  }
}
