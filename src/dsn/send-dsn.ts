import net from 'node:net';
import os from 'node:os';
import { domainToASCII } from 'node:url';
// SMTPConnection rather than createTransport: a session per attempt tells apart a failure while connecting
// (connect callback and 'error' before it, so the next MX is tried) from one inside the transaction (send
// callback, final), it can QUIT after the reply (the transport only closes the socket), and close() aborts it
// when the overall budget runs out. The Buffer goes to send() as it is, which is what the transport's `raw` does.
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { resolveMxRoute, type MxResolver } from '../smtp/mx-route.js';

export interface SendDsnOptions {
  /** Envelope recipient: the original message's envelope sender. One pair of angle brackets is accepted. */
  to: string;
  /**
   * Deliver to this relay (port default 25); without it, to the recipient domain's MX (priority order, equal
   * priorities shuffled, implicit A/AAAA when no MX, RFC 7505 null MX = permanent failure without connecting).
   */
  relay?: { host: string; port?: number };
  /**
   * Resolver for the MX route, shaped like node's dns.promises.Resolver (resolveMx, resolve4, resolve6); default the
   * system resolver. Tests point domains at 127.0.0.1 with it. A relay host name is resolved by nodemailer instead.
   */
  resolver?: MxResolver;
  /** Port for MX delivery (default 25). */
  port?: number;
  /** Our HELO/EHLO name (default os.hostname()). */
  heloName?: string;
  /**
   * Budget for the whole attempt, DNS and all MX hosts together (default 60 s). Within it each connection gets
   * 30 s for its setup (TCP connect, greeting, EHLO, STARTTLS) and each later reply 60 s of inactivity.
   */
  timeoutMs?: number;
  /**
   * STARTTLS when offered (default true), without failing on an untrusted certificate (opportunistic, as MTAs do).
   * A failed handshake is retried once on the same address in cleartext.
   */
  opportunisticTls?: boolean;
}

export interface SendDsnResult {
  status: 'sent' | 'temporary-failure' | 'permanent-failure';
  /** SMTP reply code when there was one. */
  code?: number;
  /** The server's reply, or what went wrong, one line, ASCII. */
  response: string;
  /**
   * Host the result comes from: the last one tried, unless an earlier host failed temporarily and the later ones
   * permanently, in which case the temporary failure is reported (some MX may still take the message later).
   */
  host?: string;
}

const DEFAULT_BUDGET_MS = 60_000;
// Postfix's smtp_connect_timeout. nodemailer counts the greeting and STARTTLS against its connectionTimeout, so
// this covers the whole setup and a tarpitting MX still leaves half the default budget to the next one.
const SETUP_TIMEOUT_MS = 30_000;
const REPLY_TIMEOUT_MS = 60_000;
// Postfix's smtp_mx_address_limit: past five addresses more attempts rarely help and only delay the report.
const MAX_ADDRESSES = 5;
// How long a QUIT may wait for its reply before the socket is dropped; the result is already known by then.
const QUIT_TIMEOUT_MS = 5_000;

// At least two labels and a top-level label with a letter: rules out IP addresses and single-label names that a
// resolver search list could complete to one of our own hosts.
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const MAIL_DOMAIN = new RegExp(`^(?=.{1,253}$)(?:${LABEL}\\.)+(?=[a-z0-9-]*[a-z])${LABEL}$`);

interface Target {
  host: string;
  address: string;
  port: number;
}

interface Attempt {
  result: SendDsnResult;
  /** The failure came before MAIL FROM, so another host (or a cleartext retry) may do better. */
  beforeTransaction: boolean;
  tlsFailed: boolean;
}

/**
 * Sends a DSN with the null reverse-path `MAIL FROM:<>` (RFC 5321 §4.5.5, §6.1), so that a failure to deliver it
 * never produces another notification. `dsn` is the complete message (CRLF line ends); its bytes go out as they
 * are, apart from SMTP dot-stuffing and bare CR/LF becoming CRLF. Never throws: every failure is a result.
 */
export async function sendDsn(dsn: Buffer, options: SendDsnOptions): Promise<SendDsnResult> {
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_BUDGET_MS);
  try {
    const recipient = parseRecipient(options.to);
    if ('refused' in recipient) return { status: 'permanent-failure', response: `Not sent: ${recipient.refused}` };

    const targets = options.relay
      ? [{ host: options.relay.host, address: options.relay.host, port: options.relay.port ?? 25 }]
      : await mxTargets(recipient.domain, options, deadline);
    if (!Array.isArray(targets)) return targets;

    let reported: SendDsnResult | undefined;
    for (const target of targets) {
      let attempt = await attemptDelivery(dsn, recipient.address, target, options, deadline, options.opportunisticTls ?? true);
      if (attempt.beforeTransaction && attempt.tlsFailed && Date.now() < deadline) {
        attempt = await attemptDelivery(dsn, recipient.address, target, options, deadline, false);
      }
      if (!attempt.beforeTransaction) return attempt.result;
      if (attempt.result.status === 'temporary-failure' || reported?.status !== 'temporary-failure') {
        reported = attempt.result;
      }
      if (Date.now() >= deadline) break;
    }
    // targets is never empty: a relay, or a route with at least one host holding at least one address.
    return reported ?? { status: 'temporary-failure', response: 'No host was tried' };
  } catch (err) {
    return { status: 'temporary-failure', response: oneLine(`Internal error: ${String(err)}`) };
  }
}

function parseRecipient(to: string): { address: string; domain: string } | { refused: string } {
  // Milter envelope macros carry the brackets: <user@example.com>.
  const bare = /^<.*>$/s.test(to) ? to.slice(1, -1) : to;
  if (bare === '') return { refused: 'the recipient is the null reverse-path; a notification is never sent about a notification (RFC 5321 section 6.1)' };
  // CR/LF would inject SMTP commands; a space would split RCPT TO into parameters on the server.
  if (/[\x00-\x20\x7f-\x9f<>]/.test(bare)) return { refused: 'control character, space or angle bracket in the recipient' };
  const at = bare.lastIndexOf('@');
  // domainToASCII turns an IDN into its A-label, so an ASCII local part needs no SMTPUTF8; it yields '' when invalid.
  const domain = at > 0 ? domainToASCII(bare.slice(at + 1)) : '';
  if (!MAIL_DOMAIN.test(domain)) return { refused: 'the recipient has no valid domain' };
  return { address: `${bare.slice(0, at)}@${domain}`, domain };
}

async function mxTargets(domain: string, options: SendDsnOptions, deadline: number): Promise<Target[] | SendDsnResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<{ temporary: string }>((resolve) => {
    timer = setTimeout(() => resolve({ temporary: `${domain}: DNS lookup timed out` }), deadline - Date.now());
  });
  const route = await Promise.race([resolveMxRoute(domain, options.resolver), timeout]).finally(() => clearTimeout(timer));
  if ('permanent' in route) return { status: 'permanent-failure', response: oneLine(route.permanent) };
  if ('temporary' in route) return { status: 'temporary-failure', response: oneLine(route.temporary) };
  const port = options.port ?? 25;
  return route.hosts
    .flatMap(({ host, addresses }) => addresses.map((address) => ({ host, address, port })))
    .slice(0, MAX_ADDRESSES);
}

function attemptDelivery(
  dsn: Buffer,
  recipient: string,
  target: Target,
  options: SendDsnOptions,
  deadline: number,
  tls: boolean,
): Promise<Attempt> {
  return new Promise((resolve) => {
    const left = Math.max(deadline - Date.now(), 1);
    const connection = new SMTPConnection({
      host: target.address,
      port: target.port,
      // SNI names the MX host; the connection goes to one of its addresses.
      ...(net.isIP(target.host) ? {} : { servername: target.host }),
      name: options.heloName ?? os.hostname(),
      ignoreTLS: !tls,
      opportunisticTLS: true,
      tls: { rejectUnauthorized: false },
      connectionTimeout: Math.min(SETUP_TIMEOUT_MS, left),
      greetingTimeout: Math.min(SETUP_TIMEOUT_MS, left),
      socketTimeout: Math.min(REPLY_TIMEOUT_MS, left),
      logger: false,
    });
    let inTransaction = false;
    let settled = false;
    const settle = (attempt: Attempt): void => {
      if (settled) return;
      settled = true;
      clearTimeout(budgetTimer);
      resolve(attempt);
    };
    // `upgrading` tells a failed STARTTLS handshake apart: nodemailer reports it as ESOCKET, ETLS or ETIMEDOUT.
    const fail = (err: SMTPConnection.SMTPError): void =>
      settle({ result: failure(err, target.host), beforeTransaction: !inTransaction, tlsFailed: connection.upgrading === true });
    const budgetTimer = setTimeout(() => {
      connection.close();
      settle({
        result: { status: 'temporary-failure', response: `Time budget of ${options.timeoutMs ?? DEFAULT_BUDGET_MS} ms exhausted`, host: target.host },
        beforeTransaction: false,
        tlsFailed: false,
      });
    }, left);

    // Kept for the whole session: an unhandled 'error' event would throw.
    connection.on('error', fail);
    connection.connect((err) => {
      if (err) return fail(err);
      inTransaction = true;
      const envelope = { from: '', to: [recipient], size: dsn.length, use8BitMime: dsn.some((byte) => byte > 0x7f) };
      connection.send(envelope, dsn, (sendErr, info) => {
        // A dead connection ignores the QUIT; a live one that never answers it is dropped.
        connection.quit();
        setTimeout(() => connection.close(), QUIT_TIMEOUT_MS).unref();
        if (sendErr || !info) return fail(sendErr ?? new Error('No reply to the message'));
        const code = Number(/^\d{3}/.exec(info.response)?.[0]);
        settle({
          result: { status: 'sent', ...(code ? { code } : {}), response: oneLine(info.response), host: target.host },
          beforeTransaction: false,
          tlsFailed: false,
        });
      });
    });
  });
}

function failure(err: SMTPConnection.SMTPError, host: string): SendDsnResult {
  const code = err.responseCode;
  // Without a reply, EMESSAGE means nodemailer refused the message itself (over the SIZE the server announced):
  // sending it again cannot help. Anything else without a reply is a connection problem.
  const permanent = code ? code >= 500 && code <= 599 : err.code === 'EMESSAGE';
  return {
    status: permanent ? 'permanent-failure' : 'temporary-failure',
    ...(code ? { code } : {}),
    response: oneLine(err.response ?? err.message),
    host,
  };
}

function oneLine(text: string): string {
  return text
    .replace(/\s+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?')
    .trim();
}
