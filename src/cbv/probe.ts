import { randomBytes } from 'node:crypto';
import { SmtpSession, SmtpTimeoutError, replyText, type SmtpReply } from '../smtp/smtp-session.js';
import type { ProbeAddress } from './address.js';
import { classifyRcpt, enhancedStatusOf, type Classified } from './classify.js';

export interface ProbeSettings {
  heloName: string;
  probeSender: string;
  connectTimeoutMs: number;
  greetingTimeoutMs: number;
  commandTimeoutMs: number;
  deadline: number;
  tls: boolean;
  detectCatchAll: boolean;
}

/** The answer for one address, with the reply that decided it. */
export interface AddressAnswer extends Classified {
  code: number | undefined;
  message: string;
}

/**
 * What one MX address said. `next`: it could not take the question (refused, silent, 4xx/5xx greeting, broken
 * EHLO): ask the next MX. `answered`: it answered for each address; no other MX is asked.
 */
export type HostOutcome = { kind: 'next'; reason: string; tlsFailed?: boolean; noService?: boolean } | { kind: 'answered'; answers: Map<ProbeAddress, AddressAnswer> };

function answer(reply: SmtpReply, classified: Classified): AddressAnswer {
  return { ...classified, code: reply.code, message: replyText(reply) };
}

/** A refused MAIL FROM: the answer for every address of the domain. */
function mailRefused(mail: SmtpReply, settings: ProbeSettings): AddressAnswer {
  const refused = mail.code >= 500;
  const detail = refused ? (settings.probeSender === '' ? 'null-sender-refused' : 'probe-sender-refused') : 'temporary';
  return answer(mail, { result: refused ? 'unverifiable' : 'tempfail', enhancedStatus: enhancedStatusOf(mail), detail });
}

function sameAnswer(addresses: readonly ProbeAddress[], a: AddressAnswer): Map<ProbeAddress, AddressAnswer> {
  return new Map(addresses.map((address) => [address, a]));
}

/**
 * The probe dialogue with one MX address: greeting, EHLO (HELO when EHLO is refused), STARTTLS when offered,
 * then for each address MAIL FROM:<probe sender> and RCPT TO — RSET between addresses — and QUIT. Never DATA.
 */
export async function probeHost(
  host: string,
  ip: string,
  port: number,
  addresses: readonly ProbeAddress[],
  settings: ProbeSettings,
  transcript: string[],
): Promise<HostOutcome> {
  let session: SmtpSession | undefined;
  try {
    session = await SmtpSession.connect(ip, port, settings.connectTimeoutMs, settings.deadline);
    const greeting = await session.read('greeting', settings.greetingTimeoutMs);
    if (greeting.code !== 220) {
      await session.quit();
      return { kind: 'next', reason: `greeting ${replyText(greeting)}`, noService: greeting.code >= 500 };
    }
    let ehlo = await session.command(`EHLO ${settings.heloName}`, settings.commandTimeoutMs);
    if (ehlo.code >= 500) ehlo = await session.command(`HELO ${settings.heloName}`, settings.commandTimeoutMs);
    if (ehlo.code !== 250) {
      await session.quit();
      return { kind: 'next', reason: `EHLO ${replyText(ehlo)}` };
    }
    // An MX that greets with our own name is us: probing it would loop (pymilter's "fraudulent MX" check).
    if (ehlo.lines[0]?.split(/\s/)[0]?.toLowerCase() === settings.heloName.toLowerCase()) {
      await session.quit();
      const self: AddressAnswer = { result: 'unverifiable', enhancedStatus: undefined, detail: 'self-mx', code: undefined, message: `${host} is this host` };
      return { kind: 'answered', answers: sameAnswer(addresses, self) };
    }
    let capabilities = new Set(ehlo.lines.slice(1).map((l) => l.split(/\s/)[0]?.toUpperCase() ?? ''));
    if (settings.tls && capabilities.has('STARTTLS')) {
      const ready = await session.command('STARTTLS', settings.commandTimeoutMs);
      if (ready.code === 220) {
        try {
          await session.startTls(host, settings.commandTimeoutMs);
        } catch (err) {
          session.close();
          return { kind: 'next', reason: `TLS: ${(err as Error).message}`, tlsFailed: true };
        }
        ehlo = await session.command(`EHLO ${settings.heloName}`, settings.commandTimeoutMs);
        if (ehlo.code !== 250) {
          await session.quit();
          return { kind: 'next', reason: `EHLO after TLS ${replyText(ehlo)}` };
        }
        capabilities = new Set(ehlo.lines.slice(1).map((l) => l.split(/\s/)[0]?.toUpperCase() ?? ''));
      }
    }
    const answers = new Map<ProbeAddress, AddressAnswer>();
    const smtputf8 = capabilities.has('SMTPUTF8');
    let first = true;
    // With PIPELINING (RFC 2920) the commands of one transaction go in one write, as Postfix's verify does.
    const pipelining = capabilities.has('PIPELINING');
    const transaction = async (address: ProbeAddress, mailbox: string): Promise<SmtpReply | AddressAnswer> => {
      const s = session as SmtpSession;
      const reset = !first;
      first = false;
      const mailFrom = `MAIL FROM:<${settings.probeSender}>${address.utf8Local ? ' SMTPUTF8' : ''}`;
      const rcptTo = `RCPT TO:<${mailbox}>`;
      if (!pipelining) {
        if (reset) await s.command('RSET', settings.commandTimeoutMs);
        const mail = await s.command(mailFrom, settings.commandTimeoutMs);
        return mail.code === 250 ? s.command(rcptTo, settings.commandTimeoutMs) : mailRefused(mail, settings);
      }
      s.send(reset ? ['RSET', mailFrom, rcptTo] : [mailFrom, rcptTo]);
      if (reset) await s.read('RSET', settings.commandTimeoutMs);
      const mail = await s.read('MAIL', settings.commandTimeoutMs);
      if (mail.code !== 250) {
        // The RCPT already sent gets its own (503) reply: read it so that a later command reads its own.
        await s.read('RCPT', settings.commandTimeoutMs).catch(() => undefined);
        return mailRefused(mail, settings);
      }
      return s.read('RCPT', settings.commandTimeoutMs);
    };
    for (const address of addresses) {
      if (address.utf8Local && !smtputf8) {
        answers.set(address, { result: 'unverifiable', enhancedStatus: undefined, detail: 'smtputf8-unsupported', code: undefined, message: `${host} does not offer SMTPUTF8` });
        continue;
      }
      let reply: SmtpReply | AddressAnswer;
      try {
        reply = await transaction(address, `${address.local}@${address.domain}`);
      } catch (err) {
        const stage = err instanceof SmtpTimeoutError ? 'no reply' : 'connection lost';
        answers.set(address, { result: 'tempfail', enhancedStatus: undefined, detail: stage, code: undefined, message: `${stage}: ${(err as Error).message}` });
        break;
      }
      if ('result' in reply) {
        // The MAIL FROM answer concerns the whole domain: every address gets it.
        for (const other of addresses) if (!answers.has(other)) answers.set(other, reply);
        break;
      }
      answers.set(address, answer(reply, classifyRcpt(reply)));
    }
    if (settings.detectCatchAll) await checkCatchAll(answers, transaction, addresses);
    await session.quit();
    for (const address of addresses) {
      if (!answers.has(address)) answers.set(address, { result: 'tempfail', enhancedStatus: undefined, detail: 'connection lost', code: undefined, message: 'not asked' });
    }
    return { kind: 'answered', answers };
  } catch (err) {
    session?.close();
    return { kind: 'next', reason: (err as Error).message };
  } finally {
    transcript.push(`-- ${host} [${ip}]:${port}`, ...(session?.transcript ?? ['(no connection)']));
  }
}

/**
 * A domain that accepts a random local part accepts anything: an accepted address there proves nothing
 * (Exim's `random` callout option). One random probe per session; a 4xx leaves it undecided.
 */
async function checkCatchAll(
  answers: Map<ProbeAddress, AddressAnswer>,
  transaction: (address: ProbeAddress, mailbox: string) => Promise<SmtpReply | AddressAnswer>,
  addresses: readonly ProbeAddress[],
): Promise<void> {
  const accepted = addresses.filter((a) => answers.get(a)?.result === 'valid');
  const sample = accepted[0];
  if (!sample) return;
  let reply: SmtpReply | AddressAnswer;
  try {
    reply = await transaction(sample, `milterkit-${randomBytes(8).toString('hex')}@${sample.domain}`);
  } catch {
    return;
  }
  if ('result' in reply) return;
  const verdict = classifyRcpt(reply);
  if (verdict.result === 'invalid') return;
  for (const address of accepted) {
    const previous = answers.get(address) as AddressAnswer;
    answers.set(address, verdict.result === 'valid'
      ? { ...previous, result: 'unverifiable', detail: 'catch-all' }
      : { ...previous, result: 'tempfail', detail: 'catch-all check deferred' });
  }
}
