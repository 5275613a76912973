/**
 * Typed parser defects, in the spirit of GMime's parser warnings: the parser never throws on malformed
 * input; it makes the choice a mail client would make and records what it had to guess.
 */
export type DefectCode =
  /** A multipart ended without its close delimiter (`--boundary--`). */
  | 'missing-close-boundary'
  /** A multipart body has no delimiter of its boundary at all: it has no parts, only a preamble. */
  | 'missing-start-boundary'
  /** A multipart/* without a usable boundary parameter: treated as a leaf. */
  | 'multipart-without-boundary'
  /** A nested multipart reuses an enclosing multipart's boundary; the innermost one takes the delimiters. */
  | 'nested-duplicate-boundary'
  /** Several different boundary parameters (CVE-2024-28054), or one ending in whitespace: parsers split differently. */
  | 'ambiguous-boundary'
  /** A parameter given twice, or RFC 2231 continuations with a gap or out of order: clients may pick differently. */
  | 'ambiguous-parameter'
  /** A bare CR inside a header field: some programs end the line there. */
  | 'bare-cr-in-header'
  /** More than one Content-Type header: the first one is used. */
  | 'duplicate-content-type'
  /** More than one Content-Transfer-Encoding header: the first one is used. */
  | 'duplicate-content-transfer-encoding'
  /** More than one Content-Disposition header: the first one is used; every file name is a candidate. */
  | 'duplicate-content-disposition'
  /** A Content-Type that does not parse as type/subtype: the RFC 2045 default is used. */
  | 'invalid-content-type'
  /** A Content-Transfer-Encoding we do not know: the body is taken as binary. */
  | 'unknown-transfer-encoding'
  /** A transfer encoding a multipart may not have (RFC 2045 6.4): ignored. */
  | 'invalid-transfer-encoding'
  /** A message/rfc822 part whose body is base64 or quoted-printable encoded (RFC 2046 5.2.1 forbids it). */
  | 'encoded-message'
  /** A header block that does not end with an empty line (or a part whose first line is not a field). */
  | 'missing-header-separator'
  /** A line inside a header block that is neither a field nor a continuation: kept raw, reading goes on. */
  | 'invalid-header-line'
  /** A raw 8-bit header value that is not UTF-8: decoded with the fallback charset. */
  | 'invalid-8bit-header'
  /** A malformed RFC 2047 encoded-word, left as written. */
  | 'invalid-encoded-word'
  /** A charset iconv-lite does not know: the fallback chain was used. */
  | 'unknown-charset'
  /** Characters outside the base64 alphabet, or a truncated quantum: skipped. */
  | 'invalid-base64'
  /** An `=` not followed by two hex digits or a line break: kept literally. */
  | 'invalid-quoted-printable'
  /** x-uuencode data without a well-formed begin/end frame. */
  | 'invalid-uuencode'
  /** Nesting deeper than `maxDepth`: the part is a leaf. */
  | 'depth-limit-exceeded'
  /** More than `maxParts` parts: the rest of that multipart is kept raw in its epilogue. */
  | 'part-limit-exceeded'
  /** A header block larger than `maxHeaderBytes`: the fields past the limit are kept raw, not interpreted. */
  | 'header-limit-exceeded';

export interface Defect {
  readonly code: DefectCode;
  /** Path of the part the defect belongs to ("" for the root). */
  readonly path: string;
  /** Byte offset in the part's source (the message, or the decoded body of an encoded message/rfc822). */
  readonly offset: number;
  /** A short human note, e.g. the unknown charset's name. */
  readonly detail?: string;
}
