import { gunzipSync } from 'node:zlib';
import { escapeName, nameReasons } from './names.js';
import type { DefangPolicy, PolicySets } from './policy.js';
import { CATEGORY, isEicar, oleHasMacros, sniff, type SniffedType } from './sniff.js';
import { readTnef } from './tnef-reader.js';
import type { Reason } from './types.js';
import { readZip } from './zip-reader.js';

/**
 * Looks at decoded bytes and says what is dangerous in them, recursing into archives (by magic, not by
 * name) within the policy's depth and byte budgets. The same checks apply to a MIME part and to a file
 * found inside a zip, a TNEF blob or a gzip stream.
 */
export interface ContentVerdict {
  sniffed: SniffedType;
  reasons: Reason[];
}

export interface InspectionContext {
  policy: DefangPolicy;
  sets: PolicySets;
  /** Archive nesting of this content (0 for a MIME part). */
  depth: number;
  /** Uncompressed bytes still allowed for this part, shared by every nested archive. */
  budget: { bytes: number };
  /** A text body of the message: script heuristics and HTML rules are left to the body checks. */
  isBody: boolean;
}

// Zip problems and what they mean for a filter.
const AMBIGUOUS_ZIP = new Set(['multiple-archives', 'prepended-data', 'trailing-data', 'central-local-mismatch', 'overlapping-members']);
const LIMIT_ZIP = new Set(['member-limit', 'size-limit', 'ratio-limit']);
const UNREADABLE_ZIP = new Set(['not-a-zip', 'corrupt', 'unsupported-method']);
const UNSCANNABLE: ReadonlySet<SniffedType> = new Set(['rar', '7z', 'cab', 'bzip2', 'xz']);
const ZIP_END = Buffer.from('504b0506', 'hex');
// OOXML keeps VBA in vbaProject.bin (word/, xl/, ppt/): a macro document whatever its extension.
const OOXML_MACROS = /(?:^|\/)vbaproject\.bin$/i;

function codes(reasons: readonly Reason[]): string {
  return [...new Set(reasons.map((r) => r.code))].join(',');
}

/** Checks a file found inside a container: its name and its content, one level deeper. */
function inspectEmbedded(name: string, data: Buffer | undefined, ctx: InspectionContext): Reason[] {
  const reasons = nameReasons(name, ctx.sets.bannedExtensions, ctx.sets.compression);
  if (data) reasons.push(...inspectContent(data, { ...ctx, depth: ctx.depth + 1, isBody: false }).reasons);
  return reasons;
}

function inspectZip(data: Buffer, ctx: InspectionContext): Reason[] {
  const limits = { ...ctx.policy.archives, maxTotalBytes: Math.max(0, ctx.budget.bytes) };
  const listing = readZip(data, limits);
  const reasons: Reason[] = [];
  // Several names may share one member's bytes (central vs local names): inspect the bytes once.
  const contentReasons = new Map<Buffer, Reason[]>();
  for (const member of listing.members) {
    if (OOXML_MACROS.test(member.name)) reasons.push({ code: 'macro-document', detail: escapeName(member.name) });
    const found = nameReasons(member.name, ctx.sets.bannedExtensions, ctx.sets.compression);
    if (member.data) {
      let inner = contentReasons.get(member.data);
      if (!inner) {
        ctx.budget.bytes -= member.data.length;
        inner = inspectContent(member.data, { ...ctx, depth: ctx.depth + 1, isBody: false }).reasons;
        contentReasons.set(member.data, inner);
      }
      found.push(...inner);
    }
    if (member.encrypted) reasons.push({ code: 'encrypted-archive', detail: escapeName(member.name) });
    if (found.length > 0) reasons.push({ code: 'dangerous-archive-member', detail: `${escapeName(member.name)}: ${codes(found)}` });
  }
  for (const problem of new Set<string>(listing.problems)) {
    if (problem === 'encrypted') {
      if (!reasons.some((r) => r.code === 'encrypted-archive')) reasons.push({ code: 'encrypted-archive' });
    } else if (AMBIGUOUS_ZIP.has(problem)) reasons.push({ code: 'ambiguous-archive', detail: problem });
    else if (LIMIT_ZIP.has(problem)) reasons.push({ code: 'archive-limit-exceeded', detail: problem });
    else if (UNREADABLE_ZIP.has(problem)) reasons.push({ code: 'unreadable-archive', detail: problem });
  }
  return reasons;
}

function inspectTnef(data: Buffer, ctx: InspectionContext): Reason[] {
  const { files, problems } = readTnef(data, { ...ctx.policy.archives, maxTotalBytes: Math.max(0, ctx.budget.bytes) });
  const reasons: Reason[] = [];
  for (const file of files) {
    ctx.budget.bytes -= file.data?.length ?? 0;
    const found = inspectEmbedded(file.name, file.data, ctx);
    if (found.length > 0) reasons.push({ code: 'dangerous-tnef-attachment', detail: `${escapeName(file.name)}: ${codes(found)}` });
  }
  for (const problem of new Set(problems)) {
    reasons.push(problem.endsWith('-limit') ? { code: 'archive-limit-exceeded', detail: `tnef ${problem}` } : { code: 'unreadable-tnef', detail: problem });
  }
  return reasons;
}

function inspectGzip(data: Buffer, ctx: InspectionContext): Reason[] {
  const limit = Math.min(ctx.budget.bytes, data.length * ctx.policy.archives.maxRatio);
  let inner: Buffer;
  try {
    inner = gunzipSync(data, { maxOutputLength: Math.max(1, limit) });
  } catch (err) {
    const tooBig = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || /larger than/i.test((err as Error).message);
    return [tooBig ? { code: 'archive-limit-exceeded', detail: 'gzip size' } : { code: 'unreadable-archive', detail: 'gzip' }];
  }
  ctx.budget.bytes -= inner.length;
  const found = inspectContent(inner, { ...ctx, depth: ctx.depth + 1, isBody: false }).reasons;
  return found.length > 0 ? [{ code: 'dangerous-archive-member', detail: `gzip: ${codes(found)}` }] : [];
}

export function inspectContent(data: Buffer, ctx: InspectionContext): ContentVerdict {
  const sniffed = sniff(data);
  const reasons: Reason[] = [];
  if (isEicar(data)) reasons.push({ code: 'eicar-test-file' });
  switch (CATEGORY[sniffed]) {
    case 'executable':
      reasons.push({ code: 'executable-content', detail: sniffed });
      break;
    case 'shortcut':
      reasons.push({ code: 'shortcut-content', detail: sniffed });
      break;
    case 'disk-image':
      reasons.push({ code: 'disk-image', detail: sniffed });
      break;
    case 'script':
      if (!ctx.isBody) reasons.push({ code: 'script-content', detail: sniffed });
      break;
    case 'html':
      if (!ctx.isBody) reasons.push({ code: 'html-attachment', detail: sniffed });
      break;
    default:
      break;
  }
  if (sniffed === 'onenote' || (sniffed === 'ole' && oleHasMacros(data))) reasons.push({ code: 'macro-document', detail: sniffed });
  // A zip behind other data (a picture with an archive appended, a self-extractor): look inside too.
  if (!ctx.isBody && sniffed !== 'zip' && CATEGORY[sniffed] !== 'executable' && data.includes(ZIP_END)) {
    reasons.push(...inspectZip(data, ctx));
  }
  if (CATEGORY[sniffed] === 'archive') {
    if (ctx.depth >= ctx.policy.archives.maxDepth) reasons.push({ code: 'archive-limit-exceeded', detail: `depth ${ctx.depth}` });
    else if (ctx.budget.bytes <= 0) reasons.push({ code: 'archive-limit-exceeded', detail: 'total size' });
    else if (sniffed === 'zip') reasons.push(...inspectZip(data, ctx));
    else if (sniffed === 'tnef') reasons.push(...inspectTnef(data, ctx));
    else if (sniffed === 'gzip') reasons.push(...inspectGzip(data, ctx));
    else if (UNSCANNABLE.has(sniffed)) reasons.push({ code: 'unscannable-archive', detail: sniffed });
  }
  return { sniffed, reasons };
}
