import type { SmtpReply } from '../smtp/smtp-session.js';
import type { VerificationResult } from './types.js';

/** What a reply to RCPT says about the mailbox. */
export interface Classified {
  result: VerificationResult;
  enhancedStatus: string | undefined;
  detail?: string;
}

const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})\b/;

export function enhancedStatusOf(reply: SmtpReply): string | undefined {
  const m = ENHANCED.exec(reply.lines[0] ?? '');
  return m && m[1] === String(reply.code)[0] ? `${m[1]}.${m[2]}.${m[3]}` : undefined;
}

/**
 * 250/251 accept the mailbox; 4xx is a "try later" (greylisting); a 5xx only says the mailbox is bad when it
 * is an addressing reply (5.1.x, or a bare 550/551/553). A policy reject (5.7.x: our IP is listed, say) says
 * nothing about the mailbox. 552 at RCPT is treated as 452, as RFC 5321 asks.
 */
export function classifyRcpt(reply: SmtpReply): Classified {
  const enhancedStatus = enhancedStatusOf(reply);
  if (reply.code === 250 || reply.code === 251) return { result: 'valid', enhancedStatus };
  if (reply.code < 500 || reply.code === 552) return { result: 'tempfail', enhancedStatus, detail: 'temporary' };
  if (enhancedStatus ? enhancedStatus.split('.')[1] === '1' : [550, 551, 553].includes(reply.code)) return { result: 'invalid', enhancedStatus };
  return { result: 'unverifiable', enhancedStatus, detail: 'policy' };
}
