import type { Defect, DefectCode } from '../mime/defects.js';
import { decodeTransferEncoding, parseTransferEncoding } from '../mime/encodings/transfer-encoding.js';
import type { MimePart } from '../mime/part.js';
import { HTML_EXTENSIONS } from './banned-lists.js';
import { inspectContent } from './content-inspector.js';
import { mayHaveActiveContent } from './html-precheck.js';
import { sanitizeHtml } from './html-sanitizer.js';
import { findInlineFiles, mayHoldInlineFiles, type InlineFile } from './inline-files.js';
import { distinctNames, escapeName, extensionOf, nameReasons, nameVariants } from './names.js';
import type { DefangPolicy, PolicySets } from './policy.js';
import type { SniffedType } from './sniff.js';
import type { Reason, ReasonCode } from './types.js';

/** What one MIME part was found to be, and how it could be cleaned if the policy says `sanitize`. */
export interface PartFindings {
  part: MimePart;
  names: string[];
  sniffed: SniffedType;
  reasons: Reason[];
  /** Decoded content (undefined for containers). */
  content: Buffer | undefined;
  /** Cleaned HTML for an HTML body with active content. */
  sanitizedHtml?: string;
  /** Dangerous inline files (uuencode, yEnc, BinHex) in a text body. */
  inlineFiles?: InlineFile[];
}

/** Parser defects that make parsers disagree on a part, or on the structure. */
const DEFECT_REASONS: Partial<Record<DefectCode, ReasonCode>> = {
  'duplicate-content-type': 'ambiguous-mime',
  'duplicate-content-transfer-encoding': 'ambiguous-mime',
  'duplicate-content-disposition': 'ambiguous-mime',
  'invalid-header-line': 'ambiguous-mime',
  'ambiguous-parameter': 'ambiguous-mime',
  'bare-cr-in-header': 'ambiguous-mime',
  // Where one parser sees parts and another sees one opaque body, the whole structure is in doubt.
  'multipart-without-boundary': 'ambiguous-structure',
  'ambiguous-boundary': 'ambiguous-structure',
  'nested-duplicate-boundary': 'ambiguous-structure',
  'missing-start-boundary': 'ambiguous-structure',
  'invalid-base64': 'undecodable-content',
  'unknown-transfer-encoding': 'undecodable-content',
  'invalid-uuencode': 'undecodable-content',
  'depth-limit-exceeded': 'mime-limit-exceeded',
  'part-limit-exceeded': 'mime-limit-exceeded',
  'header-limit-exceeded': 'mime-limit-exceeded',
};

// Content-Description is free text, but MIMEDefang's documentation and some clients treat a file-like
// one as a name.
const FILE_LIKE = /\.[a-z0-9{}_-]{1,40}\s*$/i;

/** A text part that is (a view of) the message body, as opposed to an attached text file. */
export function isBodyText(part: MimePart): boolean {
  if (!part.contentType.startsWith('text/') || part.disposition === 'attachment') return false;
  if (part.filename === undefined) return true;
  const container = part.parent?.contentType;
  return container === 'multipart/alternative' || container === 'multipart/related';
}

function candidateNames(part: MimePart): string[] {
  const names = [...part.filenames];
  const description = part.headers.get('content-description')?.trim();
  if (description && FILE_LIKE.test(description) && !names.includes(description)) names.push(description);
  return names;
}

/** MIME headers in a preamble or epilogue: a parser that does not find the delimiter reads them as a part. */
const HEADERS_OUTSIDE_PARTS = /^content-(?:type|transfer-encoding|disposition)\s*:/im;

function structureReasons(part: MimePart, defects: readonly Defect[]): Reason[] {
  const reasons: Reason[] = [];
  const boundaryReported = defects.some((d) => d.code === 'ambiguous-boundary');
  for (const d of defects) {
    // A repeated boundary parameter is already an ambiguous boundary: one finding, not two.
    if (boundaryReported && d.code === 'ambiguous-parameter' && d.detail?.startsWith('boundary')) continue;
    let code = DEFECT_REASONS[d.code];
    // Two Content-Types of which one is a container: parsers disagree on whether there are parts at all.
    if (d.code === 'duplicate-content-type' && declaredTypes(part).some((t) => /^(?:multipart|message)\//.test(t))) code = 'ambiguous-structure';
    if (code) reasons.push({ code, detail: d.detail === undefined ? d.code : `${d.code}: ${d.detail}` });
  }
  if (part.kind === 'multipart') {
    for (const [where, bytes] of [['preamble', part.preamble], ['epilogue', part.epilogue]] as const) {
      if (bytes.length > 0 && HEADERS_OUTSIDE_PARTS.test(bytes.toString('latin1'))) reasons.push({ code: 'ambiguous-structure', detail: `MIME headers in the ${where}` });
    }
  }
  return reasons;
}

/** The media type of every Content-Type header, duplicates included. */
function declaredTypes(part: MimePart): string[] {
  return part.headers.getHeaders('content-type').map((h) => h.rawValue.split(';')[0]?.trim().toLowerCase() ?? '');
}

/**
 * The decoded content under every transfer encoding the part declares: with two Content-Transfer-Encoding
 * headers, a client may use either, so both are inspected.
 */
function alternativeContents(part: MimePart, content: Buffer): Buffer[] {
  const declared = new Set(part.headers.getAll('content-transfer-encoding').map((v) => v.trim().toLowerCase()));
  if (declared.size < 2) return [];
  const raw = part.bodyBytes();
  return [...declared]
    .map((name) => decodeTransferEncoding(parseTransferEncoding(name) ?? 'binary', raw).data)
    .filter((data) => !data.equals(content));
}

/**
 * Everything that is wrong with one part. `defectsOf` is read after the content has been decoded: the
 * parser records decoding defects (junk in base64) lazily.
 */
export function evaluatePart(part: MimePart, defectsOf: () => readonly Defect[], policy: DefangPolicy, sets: PolicySets): PartFindings {
  const names = candidateNames(part);
  const declared = part.contentType;
  if (part.kind === 'multipart' || part.kind === 'message') {
    return { part, names, sniffed: 'unknown', reasons: structureReasons(part, defectsOf()), content: undefined };
  }
  const reasons: Reason[] = [];
  if (declared === 'message/partial') reasons.push({ code: 'fragmented-message' });
  if (declared === 'message/external-body') reasons.push({ code: 'external-body' });
  for (const type of new Set([declared, ...declaredTypes(part)])) if (sets.bannedTypes.has(type)) reasons.push({ code: 'banned-type', detail: type });

  const body = isBodyText(part);
  for (const name of names) {
    for (const reason of nameReasons(name, sets.bannedExtensions, sets.compression)) {
      // An HTML body that happens to carry a name is cleaned like any HTML body, not removed.
      const ext = reason.code === 'banned-extension' ? (reason.detail ?? '').split(':')[0] : undefined;
      if (body && ext !== undefined && HTML_EXTENSIONS.has(ext)) continue;
      reasons.push(reason);
    }
  }
  const fileNames = part.filenames;
  if (distinctNames(fileNames).length > 1) reasons.push({ code: 'conflicting-names', detail: fileNames.map((n) => escapeName(n)).join(' | ') });
  const attachedHtml = !body && names.some((n) => nameVariants(n).some((v) => HTML_EXTENSIONS.has(extensionOf(v) ?? '')));
  if (attachedHtml || (!body && declared === 'text/html')) reasons.push({ code: 'html-attachment', detail: declared });

  const content = part.content();
  if (content.length > policy.maxDecodedBytes) {
    reasons.push({ code: 'mime-limit-exceeded', detail: `decoded size ${content.length}` }, ...structureReasons(part, defectsOf()));
    return { part, names, sniffed: 'unknown', reasons, content };
  }
  const budget = { bytes: policy.archives.maxTotalBytes };
  const verdict = inspectContent(content, { policy, sets, depth: 0, budget, isBody: body });
  reasons.push(...verdict.reasons);
  for (const other of alternativeContents(part, content)) reasons.push(...inspectContent(other, { policy, sets, depth: 0, budget, isBody: false }).reasons);
  const findings: PartFindings = { part, names, sniffed: verdict.sniffed, reasons, content };

  if (part.contentType.startsWith('text/') && mayHoldInlineFiles(content)) {
    const dangerous = findInlineFiles(content.toString('latin1')).filter((file) => {
      const found = file.kind === 'binhex' ? [{ code: 'unreadable-archive' as const }] : inspectInline(file, policy, sets);
      if (found.length > 0) reasons.push({ code: 'inline-encoded-file', detail: `${file.kind} ${escapeName(file.name)}: ${[...new Set(found.map((r) => r.code))].join(',')}` });
      return found.length > 0;
    });
    if (dangerous.length > 0) findings.inlineFiles = dangerous;
  }
  if (body && declared === 'text/html') {
    const html = part.text();
    const cleaned = mayHaveActiveContent(html) ? sanitizeHtml(html) : { html, removed: [] };
    if (cleaned.removed.length > 0) {
      const removed = [...new Set(cleaned.removed.map((r) => `${r.kind}:${r.name}`))].join(',');
      reasons.push({ code: 'html-active-content', detail: removed });
      findings.sanitizedHtml = cleaned.html;
    }
  }
  reasons.push(...structureReasons(part, defectsOf()));
  return findings;
}

function inspectInline(file: InlineFile, policy: DefangPolicy, sets: PolicySets): Reason[] {
  const reasons = nameReasons(file.name, sets.bannedExtensions, sets.compression);
  if (file.data) reasons.push(...inspectContent(file.data, { policy, sets, depth: 1, budget: { bytes: policy.archives.maxTotalBytes }, isBody: false }).reasons);
  return reasons;
}
