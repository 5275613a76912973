import { createHash } from 'node:crypto';
import { createPart } from '../mime/create-part.js';
import type { MimeMessage } from '../mime/message.js';
import type { MimePart } from '../mime/part.js';
import { removeInlineFiles } from './inline-files.js';
import { escapeName } from './names.js';
import { evaluatePart, type PartFindings } from './part-evaluator.js';
import { NO_POLICY, policySets, resolvePolicy, type DefangPolicy, type Envelope, type PolicyInput } from './policy.js';
import type { Action, DefangReport, PartReport, Verdict } from './types.js';
import { warningText } from './warning.js';

const SEVERITY: Readonly<Record<Action, number>> = { accept: 0, sanitize: 1, replace: 2, drop: 3, quarantine: 4, reject: 5 };

function actionFor(findings: PartFindings, policy: DefangPolicy): Action {
  let action: Action = 'accept';
  for (const reason of findings.reasons) {
    const candidate = policy.actions[reason.code] ?? 'accept';
    if (SEVERITY[candidate] > SEVERITY[action]) action = candidate;
  }
  return action;
}

function sha256(data: Buffer | undefined): string {
  return createHash('sha256')
    .update(data ?? Buffer.alloc(0))
    .digest('hex');
}

/** A part that heads a message (the root, or an embedded message): its headers (From, Subject) stay. */
function headsMessage(part: MimePart): boolean {
  return part.parent === undefined || part.parent.kind === 'message';
}

function replaceWithWarning(findings: PartFindings, text: string, policy: DefangPolicy): void {
  const part = findings.part;
  if (headsMessage(part)) {
    for (const name of ['Content-Description', 'Content-Disposition', 'Content-ID']) part.headers.remove(name);
    part.setContent(text, { contentType: 'text/plain', filename: policy.warning.filename });
    return;
  }
  const warning = createPart({ contentType: 'text/plain', content: text, filename: policy.warning.filename, headers: { 'Content-Disposition': 'inline' } });
  part.replaceWith(warning);
}

function sanitize(findings: PartFindings): void {
  const part = findings.part;
  if (findings.sanitizedHtml !== undefined) {
    part.setContent(findings.sanitizedHtml, { contentType: 'text/html' });
  }
  if (findings.inlineFiles && findings.content) {
    // Work on the bytes (latin1 view) so the rest of the text keeps its charset untouched.
    const cleaned = removeInlineFiles(findings.content.toString('latin1'), findings.inlineFiles, (f) => `[${f.kind} file "${escapeName(f.name)}" removed by the mail filter]\n`);
    part.setContent(Buffer.from(cleaned, 'latin1'), { contentType: part.contentType });
  }
}

function apply(findings: PartFindings, action: Action, report: PartReport, policy: DefangPolicy): boolean {
  switch (action) {
    case 'sanitize':
      sanitize(findings);
      return true;
    case 'drop':
      if (findings.part.parent?.kind === 'multipart') {
        findings.part.remove();
        return true;
      }
      replaceWithWarning(findings, warningText(findings, report.sha256, policy), policy);
      return true;
    case 'replace':
      replaceWithWarning(findings, warningText(findings, report.sha256, policy), policy);
      return true;
    default:
      // accept; quarantine and reject concern the whole message, which is left as it is.
      return false;
  }
}

function verdictOf(actions: readonly Action[], changed: boolean): Verdict {
  if (actions.includes('reject')) return 'reject';
  if (actions.includes('quarantine')) return 'quarantine';
  return changed ? 'changed' : 'clean';
}

/** The report header value: ASCII, one entry per part acted on. */
function headerValue(verdict: Verdict, parts: readonly PartReport[]): string {
  const entries = parts
    .filter((p) => p.action !== 'accept')
    .map((p) => `${p.path === '' ? 'root' : p.path} ${p.action} ${[...new Set(p.reasons.map((r) => r.code))].join(',')}`);
  const value = [verdict, ...entries].join('; ');
  return value.length > 900 ? `${value.slice(0, 900)}...` : value;
}

export interface DefangOptions {
  /** The envelope, for per-domain policy overrides. */
  envelope?: Envelope;
  /** Report every part, not only those with findings. */
  reportAll?: boolean;
}

/**
 * Defangs a parsed message in place under a policy (merged over the defaults) and reports what it did.
 * Parts with no findings are not touched; a message with no findings comes out byte-identical.
 */
export function defang(msg: MimeMessage, policyInput: PolicyInput = NO_POLICY, options: DefangOptions = {}): DefangReport {
  const policy = resolvePolicy(policyInput, options.envelope);
  const sets = policySets(policy);
  // Everything is evaluated before anything changes: paths and defects refer to the tree as parsed.
  const evaluated = [...msg.walk()].map((part) => {
    const path = part.path;
    const findings = evaluatePart(part, () => msg.defects.filter((d) => d.path === path), policy, sets);
    const action = actionFor(findings, policy);
    // Hashing is the costly part of a report: only parts that are reported get one.
    const reported = options.reportAll === true || findings.reasons.length > 0;
    const report: PartReport = {
      path,
      declaredType: part.contentType,
      sniffedType: findings.sniffed,
      names: findings.names.map((n) => escapeName(n)),
      action,
      reasons: findings.reasons,
      sha256: reported ? sha256(findings.content) : '',
      size: findings.content?.length ?? part.size,
    };
    return { findings, action, report, reported };
  });

  let changed = false;
  const removed = new Set<MimePart>();
  for (const { findings, action, report } of evaluated) {
    // A part inside a replaced or dropped one went with it.
    let covered = false;
    for (let p = findings.part.parent; p && !covered; p = p.parent) covered = removed.has(p);
    if (covered) continue;
    if (apply(findings, action, report, policy)) {
      changed = true;
      if (action !== 'sanitize') removed.add(findings.part);
    }
  }

  const parts = evaluated.filter((e) => e.reported).map((e) => e.report);
  const verdict = verdictOf(
    evaluated.map((e) => e.action),
    changed,
  );
  const header = headerValue(verdict, parts);
  if (verdict !== 'clean' && policy.reportHeader !== false) msg.headers.set(policy.reportHeader, header);
  return { verdict, parts, header };
}
