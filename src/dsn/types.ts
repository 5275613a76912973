import type { MimeMessage } from '../mime/message.js';
import type { DsnTemplate, TemplateName, TemplateVariable } from './templates.js';

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

/** One recipient of the original message, as RFC 3464 per-recipient fields. */
export interface DsnRecipient {
  /** The address as the reporting MTA accepted it (RFC 3464: exactly as received). */
  finalRecipient: string;
  /** The ORCPT parameter, when the sender gave one ("rfc822;addr" or xtext as received); else no field. */
  originalRecipient?: string;
  action: DsnAction;
  /** RFC 3463 status ("5.1.1"). Default: from the diagnostic reply (its enhanced code, or mapped from its reply code). */
  status?: string;
  /** The remote MTA's name when one was involved. */
  remoteMta?: string;
  /** The SMTP reply ("550 5.1.1 <x>: Recipient address rejected") or other diagnostic. */
  diagnosticCode?: string;
  lastAttemptDate?: Date;
  /** Only for delayed DSNs (RFC 3464: MUST NOT appear in others). */
  willRetryUntil?: Date;
  /** RFC 3461 NOTIFY as given on RCPT ("NEVER", "SUCCESS,FAILURE,DELAY"...); absent: FAILURE,DELAY. */
  notify?: string;
}

export interface DsnEnvelope {
  /** The original MAIL FROM: the DSN goes there. */
  mailFrom: string;
  /** ENVID as received (xtext); gives Original-Envelope-Id. */
  envId?: string;
  /** RET: FULL returns the message, HDRS its headers. Absent: FULL within maxReturnBytes. */
  ret?: 'FULL' | 'HDRS';
  /** The original came with SMTPUTF8: RFC 6533 types and utf-8 addresses. */
  smtputf8?: boolean;
}

export interface CreateDsnOptions {
  original: Uint8Array | MimeMessage;
  /** Our host name (FQDN): Reporting-MTA and the default From. */
  reportingMta: string;
  recipients: readonly DsnRecipient[];
  envelope: DsnEnvelope;
  /** When the original arrived (Arrival-Date). */
  arrivalDate?: Date;
  /** The client that sent it to us (Received-From-MTA), e.g. its HELO name. */
  receivedFromMta?: string;
  /** A named template, or one of your own. Default: failure, delay or success, after the recipients' actions. */
  template?: TemplateName | DsnTemplate;
  /** Replacements for named templates (a policy's own wording). */
  templates?: Partial<Record<TemplateName, DsnTemplate>>;
  /** Values for template variables beyond the ones derived from the message (spfResult, defangReport...). */
  variables?: Partial<Record<TemplateVariable, string>>;
  /** From: header. Default "Mail Delivery System <MAILER-DAEMON@reportingMta>". */
  from?: string;
  /** Larger originals are returned as headers only (Postfix bounce_size_limit). Default 50,000 bytes. */
  maxReturnBytes?: number;
  /** Fixed values, for reproducible output (tests, golden files). */
  date?: Date;
  messageId?: string;
  boundary?: string;
}

/** Why no DSN may be sent (RFC 5321 4.5.5, RFC 3461 5.2, RFC 3834). */
export type DsnSuppression = 'null-sender' | 'mailer-daemon' | 'original-is-dsn' | 'auto-submitted' | 'notify-excluded' | 'no-recipients';

export class DsnSuppressedError extends Error {
  readonly reason: DsnSuppression;
  constructor(reason: DsnSuppression) {
    super(`no DSN may be sent: ${reason}`);
    this.name = 'DsnSuppressedError';
    this.reason = reason;
  }
}
