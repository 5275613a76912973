import type { MimeMessage } from '../mime/message.js';
import type { DsnAction, DsnEnvelope, DsnRecipient, DsnSuppression } from './types.js';

/**
 * Never bounce a bounce: no DSN to a null sender or MAILER-DAEMON, none about a message that is itself a
 * DSN or automatic (RFC 3834), and per recipient only what its NOTIFY asked for (RFC 3461 5.2).
 */
export type DsnDecision = { allowed: true; recipients: DsnRecipient[] } | { allowed: false; reason: DsnSuppression };

/** What NOTIFY must contain for a DSN with this action. */
const NEEDED: Readonly<Record<DsnAction, string>> = {
  failed: 'FAILURE',
  delayed: 'DELAY',
  delivered: 'SUCCESS',
  relayed: 'SUCCESS',
  expanded: 'SUCCESS',
};

export function notifyAllows(notify: string | undefined, action: DsnAction): boolean {
  // Without NOTIFY, an MTA reports failures and delays (RFC 3461 5.2.6), never successes.
  const asked = (notify ?? 'FAILURE,DELAY').toUpperCase().split(',').map((s) => s.trim());
  if (asked.includes('NEVER')) return false;
  return asked.includes(NEEDED[action]);
}

function isNullSender(mailFrom: string): boolean {
  return mailFrom.replace(/[<>\s]/g, '') === '';
}

function isDsn(original: MimeMessage): boolean {
  if (original.root.contentType === 'multipart/report') return true;
  for (const part of original.walk()) {
    if (part.contentType === 'message/delivery-status' || part.contentType === 'message/global-delivery-status') return true;
  }
  return false;
}

export function decideDsn(original: MimeMessage, envelope: DsnEnvelope, recipients: readonly DsnRecipient[]): DsnDecision {
  if (isNullSender(envelope.mailFrom)) return { allowed: false, reason: 'null-sender' };
  const local = envelope.mailFrom.replace(/^<|>$/g, '').split('@')[0]?.toLowerCase();
  if (local === 'mailer-daemon') return { allowed: false, reason: 'mailer-daemon' };
  if (isDsn(original)) return { allowed: false, reason: 'original-is-dsn' };
  const autoSubmitted = original.headers.get('auto-submitted')?.trim().toLowerCase();
  if (autoSubmitted !== undefined && !autoSubmitted.startsWith('no')) return { allowed: false, reason: 'auto-submitted' };
  if (recipients.length === 0) return { allowed: false, reason: 'no-recipients' };
  const wanted = recipients.filter((r) => notifyAllows(r.notify, r.action));
  if (wanted.length === 0) return { allowed: false, reason: 'notify-excluded' };
  return { allowed: true, recipients: wanted };
}
