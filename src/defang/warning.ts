import { htmlExcerpt } from './html-sanitizer.js';
import { escapeName } from './names.js';
import type { PartFindings } from './part-evaluator.js';
import type { DefangPolicy } from './policy.js';

/** Values the warning template may use; anything else in `${...}` is left as written. */
const VARIABLES = ['name', 'reasons', 'type', 'sniffedType', 'size', 'sha256', 'excerpt'] as const;
type Variable = (typeof VARIABLES)[number];

// Bidi, zero-width and control characters: an excerpt is readable text, never a way to reorder lines.
const UNSAFE_TEXT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/gu;

function excerptOf(findings: PartFindings): string {
  if (!findings.content || !['html', 'svg', 'mht'].includes(findings.sniffed)) return '';
  const text = htmlExcerpt(findings.content.toString('utf8'), 300).replace(UNSAFE_TEXT, '').replace(/\s+/g, ' ').trim();
  return text === '' ? '' : `Text of the removed page: ${text}\n`;
}

/**
 * The text that replaces a removed part: the original name ASCII-escaped, the reasons, the hash, never
 * raw attacker bytes.
 */
export function warningText(findings: PartFindings, sha256: string, policy: DefangPolicy): string {
  const values: Record<Variable, string> = {
    name: findings.names.length > 0 ? findings.names.map((n) => `"${escapeName(n)}"`).join(', ') : '(none)',
    reasons: [...new Set(findings.reasons.map((r) => (r.detail === undefined ? r.code : `${r.code} (${r.detail})`)))].join('; '),
    type: escapeName(findings.part.contentType),
    sniffedType: findings.sniffed,
    size: String(findings.content?.length ?? findings.part.size),
    sha256,
    excerpt: excerptOf(findings),
  };
  return policy.warning.text.replace(/\$\{(\w+)\}/g, (whole, key: string) => ((VARIABLES as readonly string[]).includes(key) ? values[key as Variable] : whole));
}
