import type { Defect, DefectCode } from './defects.js';

interface PathOwner {
  readonly path: string;
}

interface PendingDefect {
  owner: PathOwner;
  code: DefectCode;
  offset: number;
  detail: string | undefined;
}

/**
 * The defects of one message. While the parser runs, parts are not yet in their final places, so
 * defects wait with a reference to their part and get a path when parsing ends. Decoding is lazy, so
 * defects found later (a bad charset, junk in base64) arrive after parsing; each is recorded once
 * however often the content is decoded.
 */
export class DefectLog {
  readonly list: Defect[] = [];
  readonly fallbackCharset: string;
  private seen: Set<string> | undefined;
  private pending: PendingDefect[] | undefined = [];

  constructor(fallbackCharset: string) {
    this.fallbackCharset = fallbackCharset;
  }

  add(owner: PathOwner, code: DefectCode, offset: number, detail?: string): void {
    if (this.pending) this.pending.push({ owner, code, offset, detail });
    else this.record(owner.path, code, offset, detail);
  }

  /** Called by the parser once the tree is complete. */
  finishParsing(): void {
    const pending = this.pending ?? [];
    this.pending = undefined;
    for (const d of pending) this.record(d.owner.path, d.code, d.offset, d.detail);
  }

  private record(path: string, code: DefectCode, offset: number, detail: string | undefined): void {
    const key = `${code}\0${path}\0${offset}\0${detail ?? ''}`;
    this.seen ??= new Set();
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.list.push(detail === undefined ? { code, path, offset } : { code, path, offset, detail });
  }
}
