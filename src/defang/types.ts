/**
 * The vocabulary of the defang engine: what it can find, what it can do about it, and what it reports.
 * Reason codes are stable strings: logs, the report header and policies refer to them.
 */

/** What a part (or something inside it) was found to be or to carry. */
export type ReasonCode =
  // Names (any candidate name of the part, after normalisation)
  | 'banned-extension'
  | 'double-extension'
  | 'clsid-extension'
  | 'bidi-control-in-name'
  | 'zero-width-in-name'
  | 'control-character-in-name'
  | 'conflicting-names'
  // Declared type
  | 'banned-type'
  // Content, whatever the name and declared type say
  | 'executable-content'
  | 'shortcut-content'
  | 'script-content'
  | 'macro-document'
  | 'disk-image'
  | 'html-attachment'
  | 'eicar-test-file'
  // Containers
  | 'dangerous-archive-member'
  | 'encrypted-archive'
  | 'unreadable-archive'
  | 'ambiguous-archive'
  | 'unscannable-archive'
  | 'archive-limit-exceeded'
  | 'dangerous-tnef-attachment'
  | 'unreadable-tnef'
  | 'inline-encoded-file'
  | 'fragmented-message'
  | 'external-body'
  // HTML bodies that were cleaned (action: sanitize)
  | 'html-active-content'
  // MIME that parsers may read differently: a part's own headers (ambiguous-mime), or the structure
  // of the message, e.g. which delimiters belong to which multipart (ambiguous-structure)
  | 'ambiguous-mime'
  | 'ambiguous-structure'
  | 'undecodable-content'
  | 'mime-limit-exceeded';

/** What is done to a part. Ordered by severity: a part gets the most severe action of its reasons. */
export type Action = 'accept' | 'sanitize' | 'replace' | 'drop' | 'quarantine' | 'reject';

/** The message as a whole. */
export type Verdict = 'clean' | 'changed' | 'quarantine' | 'reject';

/** One thing found, with the detail that explains it (a name, a member path, a defect code...). */
export interface Reason {
  code: ReasonCode;
  /** ASCII-safe detail: names are escaped before they get here. */
  detail?: string;
}

/** What the engine reports for a part that had findings (or, with `reportAll`, for every part). */
export interface PartReport {
  path: string;
  declaredType: string;
  /** What the decoded bytes are, by magic ("pe", "zip", "html", ... or "unknown"). */
  sniffedType: string;
  /** Every candidate name, ASCII-escaped. */
  names: string[];
  action: Action;
  reasons: Reason[];
  /** Of the decoded content. */
  sha256: string;
  /** Decoded size in bytes. */
  size: number;
}

export interface DefangReport {
  verdict: Verdict;
  parts: PartReport[];
  /** The value for the report header (e.g. X-Milterkit-Defang): verdict and a summary, ASCII only. */
  header: string;
}

/** A file found inside a container (archive member, TNEF attachment, inline uuencode/yEnc block). */
export interface EmbeddedFile {
  /** Name as stored (may be attacker-controlled: check it like any name). */
  name: string;
  /** Decoded bytes when they could be extracted within the limits. */
  data: Buffer | undefined;
  encrypted: boolean;
}

/** Limits for looking inside archives: exceeding any of them is a finding, never a crash or a pass. */
export interface ArchiveLimits {
  /** Archives inside archives, counted from the outermost (1 = no nesting looked into). */
  maxDepth: number;
  /** Members per archive. */
  maxMembers: number;
  /** Uncompressed bytes extracted in total for one part. */
  maxTotalBytes: number;
  /** Uncompressed / compressed size of any member. */
  maxRatio: number;
}
