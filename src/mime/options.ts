/** Parser limits and decoding choices. Every limit degrades gracefully and records a defect. */
export interface ParseOptions {
  /** Multipart/message nesting deeper than this makes the part a leaf. Default 100. */
  maxDepth?: number;
  /** Parts beyond this count are not split out; the rest stays raw. Default 10,000. */
  maxParts?: number;
  /** Bytes of one header block that are interpreted; the rest is kept raw. Default 4 MiB. */
  maxHeaderBytes?: number;
  /** Charset for 8-bit text that is not UTF-8 and has no (known) declared charset. Default windows-1252. */
  fallbackCharset?: string;
}

export type ResolvedParseOptions = Readonly<Required<ParseOptions>>;

export const DEFAULT_PARSE_OPTIONS: ResolvedParseOptions = Object.freeze({
  // Real mail rarely nests beyond 10; 100 leaves room for digests of forwards while bounding work.
  maxDepth: 100,
  // mailsplit stops at 1,000; a 10,000-part message is already hostile.
  maxParts: 10_000,
  // Megabytes of headers happen (spam with 100k Received lines); Postfix caps one header at 100 KB.
  maxHeaderBytes: 4 * 1024 * 1024,
  // What mail clients assume for undeclared 8-bit text (a superset of Latin-1).
  fallbackCharset: 'windows-1252',
});

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  // A 0 or NaN silently meaning "default" hides configuration mistakes: refuse it.
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

export function resolveParseOptions(options: ParseOptions = {}): ResolvedParseOptions {
  const d = DEFAULT_PARSE_OPTIONS;
  return {
    maxDepth: positiveInteger('maxDepth', options.maxDepth, d.maxDepth),
    maxParts: positiveInteger('maxParts', options.maxParts, d.maxParts),
    maxHeaderBytes: positiveInteger('maxHeaderBytes', options.maxHeaderBytes, d.maxHeaderBytes),
    fallbackCharset: options.fallbackCharset ?? d.fallbackCharset,
  };
}
