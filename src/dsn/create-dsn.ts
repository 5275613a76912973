import { randomBytes } from 'node:crypto';
import libmime from 'libmime';
import { isAscii } from '../mime/charset.js';
import { encodeQuotedPrintable } from '../mime/encodings/quoted-printable.js';
import { formatField } from '../mime/header.js';
import { MimeMessage } from '../mime/message.js';
import { parseMessage } from '../mime/parse.js';
import { formatDate } from './date.js';
import { parseReply, isEnhancedStatus, statusFromReplyCode } from './status-codes.js';
import { decideDsn } from './suppression.js';
import { DEFAULT_TEMPLATES, fillTemplate, oneLine, type DsnTemplate, type TemplateName, type TemplateVariable } from './templates.js';
import { DsnSuppressedError, type CreateDsnOptions, type DsnAction, type DsnRecipient } from './types.js';
import { decodeXtext, encodeUtf8AddrXtext } from './xtext.js';

const CRLF = '\r\n';
/** Postfix's bounce_size_limit: larger originals come back as headers only, never cut. */
export const DEFAULT_MAX_RETURN_BYTES = 50_000;

/** The status class each action allows: a failure may have given up on a 4.x.x condition. */
const CLASSES: Readonly<Record<DsnAction, string>> = { failed: '54', delayed: '4', delivered: '2', relayed: '2', expanded: '2' };

function resolveStatus(r: DsnRecipient): string {
  const reply = r.diagnosticCode ? parseReply(r.diagnosticCode) : { code: undefined, status: undefined };
  let status = r.status;
  if (status !== undefined) {
    if (!isEnhancedStatus(status)) throw new RangeError(`createDsn: "${status}" is not an RFC 3463 status`);
    if (reply.code !== undefined && status[0] !== String(reply.code)[0]) {
      throw new RangeError(`createDsn: status ${status} disagrees with reply code ${reply.code}`);
    }
  } else {
    status = reply.status ?? (reply.code !== undefined ? statusFromReplyCode(reply.code) : { failed: '5.0.0', delayed: '4.0.0' }[r.action as string] ?? '2.0.0');
  }
  if (!CLASSES[r.action].includes(status[0] as string)) throw new RangeError(`createDsn: status ${status} does not fit action ${r.action}`);
  return status;
}

/** `type; address`: rfc822 for ASCII, utf-8 (RFC 6533) otherwise — raw in global DSNs, xtext in 7-bit ones. */
function addressField(address: string, global: boolean): string {
  const clean = oneLine(address).replace(/^<|>$/g, '');
  if (/^[\x20-\x7e]*$/.test(clean)) return `rfc822; ${clean}`;
  return `utf-8; ${global ? clean : encodeUtf8AddrXtext(clean)}`;
}

/** An ORCPT value as given on RCPT ("rfc822;a+2Bb@x"): xtext-decoded, with its type. */
function originalRecipientField(orcpt: string, global: boolean): string {
  const m = /^([\w.-]+);(.*)$/s.exec(oneLine(orcpt));
  if (!m) return addressField(orcpt, global);
  const type = (m[1] as string).toLowerCase();
  const value = decodeXtext((m[2] as string).trim());
  return type === 'rfc822' || type === 'utf-8' ? addressField(value, global) : `${type}; ${value}`;
}

/** A delivery-status field, folded; 7-bit DSNs get non-ASCII replaced (the part must be 7bit). */
function field(name: string, value: string, global: boolean): string {
  const text = global ? oneLine(value) : oneLine(value).replace(/[^\x20-\x7e]/g, '?');
  return libmime.foldLines(`${name}: ${text}`, 78);
}

function diagnosticField(diagnostic: string, global: boolean): string {
  const type = /^[2-5]\d\d\b/.test(diagnostic.trim()) ? 'smtp' : 'X-Milterkit';
  return field('Diagnostic-Code', `${type}; ${diagnostic}`, global);
}

function perRecipientFields(r: DsnRecipient, status: string, global: boolean): string[] {
  const lines: string[] = [];
  if (r.originalRecipient) lines.push(field('Original-Recipient', originalRecipientField(r.originalRecipient, global), global));
  lines.push(field('Final-Recipient', addressField(r.finalRecipient, global), global));
  lines.push(`Action: ${r.action}`, `Status: ${status}`);
  if (r.remoteMta) lines.push(field('Remote-MTA', `dns; ${r.remoteMta}`, global));
  if (r.diagnosticCode) lines.push(diagnosticField(r.diagnosticCode, global));
  if (r.lastAttemptDate) lines.push(`Last-Attempt-Date: ${formatDate(r.lastAttemptDate)}`);
  if (r.willRetryUntil && r.action === 'delayed') lines.push(`Will-Retry-Until: ${formatDate(r.willRetryUntil)}`);
  return lines;
}

function templateFor(options: CreateDsnOptions, actions: readonly DsnAction[]): DsnTemplate {
  const chosen = options.template;
  if (typeof chosen === 'object') return chosen;
  const name: TemplateName = chosen ?? (actions.includes('failed') ? 'failure' : actions.includes('delayed') ? 'delay' : 'success');
  return options.templates?.[name] ?? DEFAULT_TEMPLATES[name];
}

function headerBytes(message: MimeMessage): Buffer {
  return Buffer.concat([...message.root.headers].filter((h) => !h.isInvalid).map((h) => h.toBuffer(CRLF)));
}

/** The original in CRLF form, as SMTP carries it (an LF-only file is converted). */
function canonical(bytes: Buffer): Buffer {
  return bytes.includes('\n') && !bytes.includes('\r\n') ? Buffer.from(bytes.toString('latin1').replace(/\n/g, CRLF), 'latin1') : bytes;
}

/**
 * An RFC 3464 delivery status notification inside an RFC 6522 multipart/report: a human-readable part
 * from a template, the machine-readable delivery-status, and the original message (or its headers).
 * Throws DsnSuppressedError when no DSN may be sent at all (see decideDsn), RangeError on invalid input.
 */
export function createDsn(options: CreateDsnOptions): Buffer {
  const original = options.original instanceof MimeMessage ? options.original : parseMessage(options.original);
  const decision = decideDsn(original, options.envelope, options.recipients);
  if (!decision.allowed) throw new DsnSuppressedError(decision.reason);
  const reportingMta = oneLine(options.reportingMta);
  if (!/^[^\s]+$/.test(reportingMta)) throw new RangeError('createDsn: reportingMta must be a host name');
  const global = options.envelope.smtputf8 === true;
  const recipients = decision.recipients.map((r) => ({ r, status: resolveStatus(r) }));

  // The machine-readable part: per-message fields, then a group per recipient, separated by empty lines.
  const perMessage: string[] = [];
  if (options.envelope.envId !== undefined) perMessage.push(field('Original-Envelope-Id', decodeXtext(options.envelope.envId), global));
  perMessage.push(`Reporting-MTA: dns; ${reportingMta}`);
  if (options.receivedFromMta) perMessage.push(field('Received-From-MTA', `dns; ${options.receivedFromMta}`, global));
  if (options.arrivalDate) perMessage.push(`Arrival-Date: ${formatDate(options.arrivalDate)}`);
  const status = [perMessage.join(CRLF), ...recipients.map(({ r, status: s }) => perRecipientFields(r, s, global).join(CRLF))].join(CRLF + CRLF);

  // The original: whole when asked for and small enough, else its headers: never a cut MIME structure.
  const whole = canonical(original.toBuffer());
  const maxReturn = options.maxReturnBytes ?? DEFAULT_MAX_RETURN_BYTES;
  const returnWhole = options.envelope.ret !== 'HDRS' && whole.length <= maxReturn;
  const returned = returnWhole ? whole : canonical(headerBytes(original));
  const returnedType = returnWhole ? (global ? 'message/global' : 'message/rfc822') : global ? 'message/global-headers' : 'text/rfc822-headers';

  const template = templateFor(options, recipients.map(({ r }) => r.action));
  const values: Partial<Record<TemplateVariable, string>> = {
    reportingMta,
    sender: oneLine(options.envelope.mailFrom).replace(/^<|>$/g, ''),
    subject: original.headers.get('subject') ?? '(no subject)',
    messageId: original.headers.get('message-id') ?? '',
    arrivalDate: options.arrivalDate ? formatDate(options.arrivalDate) : '',
    ...options.variables,
    recipients: recipients.map(({ r, status: s }) => `<${oneLine(r.finalRecipient)}>: ${oneLine(r.diagnosticCode ?? `status ${s}`)}`).join('\n'),
    defangReport: (options.variables?.defangReport ?? '').split('\n').map(oneLine).join('\n'),
  };
  const multiLine = new Set<TemplateVariable>(['recipients', 'defangReport']);
  const text = Buffer.from(fillTemplate(template.body, values, multiLine).replace(/\r?\n/g, CRLF), 'utf8');
  const textIsAscii = isAscii(text);

  const boundary = options.boundary ?? `=_dsn_${randomBytes(12).toString('hex')}`;
  const delimiter = Buffer.from(`--${boundary}`);
  if (returned.includes(delimiter) || text.includes(delimiter)) throw new RangeError('createDsn: the boundary occurs in the content');

  const originalId = original.headers.get('message-id')?.trim();
  const references = [original.headers.get('references')?.trim(), originalId].filter((v): v is string => !!v).join(' ');
  // An SMTPUTF8 DSN carries its UTF-8 addresses as they are (RFC 6532); encoded-words are not allowed in addresses.
  const address = (name: string, value: string): string => (global ? `${name}: ${oneLine(value)}${CRLF}` : formatField(name, oneLine(value), CRLF));
  const headers = [
    address('From', options.from ?? `Mail Delivery System <MAILER-DAEMON@${reportingMta}>`),
    address('To', `<${values.sender}>`),
    formatField('Subject', fillTemplate(template.subject, values, new Set()), CRLF),
    formatField('Date', formatDate(options.date ?? new Date()), CRLF),
    formatField('Message-ID', options.messageId ?? `<${Date.now().toString(36)}.${randomBytes(6).toString('hex')}@${reportingMta}>`, CRLF),
    originalId ? formatField('In-Reply-To', originalId, CRLF) : '',
    references ? formatField('References', references, CRLF) : '',
    'Auto-Submitted: auto-replied' + CRLF,
    'MIME-Version: 1.0' + CRLF,
    `Content-Type: multipart/report; report-type=delivery-status;${CRLF} boundary="${boundary}"${CRLF}`,
  ].join('');

  return Buffer.concat([
    Buffer.from(`${headers}${CRLF}This is a MIME-encapsulated message.${CRLF}${CRLF}--${boundary}${CRLF}`),
    Buffer.from(
      `Content-Description: Notification${CRLF}Content-Type: text/plain; charset=${textIsAscii ? 'us-ascii' : 'utf-8'}${CRLF}` +
        `Content-Transfer-Encoding: ${textIsAscii ? '7bit' : 'quoted-printable'}${CRLF}${CRLF}`,
    ),
    textIsAscii ? text : encodeQuotedPrintable(text, CRLF),
    Buffer.from(`${CRLF}--${boundary}${CRLF}Content-Description: Delivery report${CRLF}Content-Type: ${global ? 'message/global-delivery-status' : 'message/delivery-status'}${CRLF}`),
    Buffer.from(`${global ? `Content-Transfer-Encoding: 8bit${CRLF}` : ''}${CRLF}`),
    Buffer.from(status + CRLF, 'utf8'),
    Buffer.from(`${CRLF}--${boundary}${CRLF}Content-Description: ${returnWhole ? 'Undelivered Message' : 'Undelivered Message Headers'}${CRLF}Content-Type: ${returnedType}${CRLF}`),
    Buffer.from(isAscii(returned) ? '' : `Content-Transfer-Encoding: 8bit${CRLF}`),
    Buffer.from(CRLF),
    returned,
    // The line break before a delimiter belongs to the delimiter: the returned copy keeps its own last one.
    Buffer.from(`${CRLF}--${boundary}--${CRLF}`),
  ]);
}
