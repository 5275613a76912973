import { closeVerificationCaches, verifyAddress, type Verification, type VerifyOptions } from '../../cbv/index.js';
import { routedResolver } from '../../smtp/routed-resolver.js';
import type { Envelope } from '../../milter/message-work.js';
import type { MilterPlugin, PluginRecipientResult } from '../pipeline.js';

export interface CbvPluginOptions extends VerifyOptions {
  /** The report header, replacing any copy the message came with (a sender could forge it). Default 'X-Milterkit-CBV'; false: none. */
  header?: string | false;
  /** Refuse mail whose sender the MX says does not exist (550 5.1.7). Default false: report only. */
  rejectInvalid?: boolean;
  /** Ask the client to retry when the check could not finish (450 4.1.7). Default false: report only. */
  tempfailOnTempfail?: boolean;
  /**
   * Give those refusals in reply to each RCPT, before the message is sent, as Postfix's
   * reject_unverified_sender does, instead of after it. The MTA then waits for an answer to every RCPT.
   * Default false.
   */
  refuseAtRcpt?: boolean;
  /**
   * How long a RCPT waits for the probe (with refuseAtRcpt); past it the recipient goes through and the
   * refusal, if any, comes after the message. Under the daemon's hookTimeoutMs, past which the MTA gets
   * the fallback for that recipient, and under the MTA's own wait: Sendmail's T=R: (10 s by default; it
   * takes no PROGRESS at RCPT), Postfix's milter_command_timeout (30 s). Default 8 s.
   */
  rcptWaitMs?: number;
  /** Domains verified at fixed hosts instead of their MX (an internal hub DNS does not publish), as transport_maps. */
  routes?: Record<string, string>;
}

/** How long a RCPT waits for the probe by default (see CbvPluginOptions.rcptWaitMs). */
export const CBV_RCPT_WAIT_MS = 8000;
export const CBV_REJECT_REPLY = '550 5.1.7 Sender address rejected: undeliverable address';
export const CBV_TEMPFAIL_REPLY = '450 4.1.7 Sender address rejected: unverified address, try again later';

/** The report header's value: result, the address checked and the deciding reply (or what went wrong), in printable ASCII. */
function reportValue(v: Verification): string {
  const printable = v.message.replace(/[^\x20-\x7e]+/g, ' ').replace(/["\\]/g, '').trim().slice(0, 200);
  return `${v.result}${v.detail ? ` (${v.detail})` : ''}; sender=<${v.address.replace(/[^\x21-\x7e]/g, '?')}>${v.mx ? `; mx=${v.mx}` : ''}; reply="${printable}"`;
}

/**
 * Callback verification of the envelope sender (see src/cbv): asks the sender domain's MX whether the
 * mailbox exists, adds a report header, and optionally refuses invalid senders — after the message, or
 * at RCPT. Bounces (null sender) are not checked. Results are cached (in memory, or in Redis for a fleet:
 * `cache: 'redis://…'`). The probe starts at the first recipient the MTA accepts, while the client goes
 * on, and one probe serves the whole transaction (every RCPT and the end of message).
 */
export function cbvPlugin(options: CbvPluginOptions = {}): MilterPlugin {
  const { header = 'X-Milterkit-CBV', rejectInvalid = false, tempfailOnTempfail = false, refuseAtRcpt = false, rcptWaitMs = CBV_RCPT_WAIT_MS, routes, ...rest } = options;
  const verifyOptions: VerifyOptions = routes ? { ...rest, resolver: routedResolver(routes, rest.resolver) } : rest;
  const senderOf = (envelope: Readonly<Envelope>): string => envelope.sender.trim().replace(/^<(.*)>$/, '$1');
  // One verification per transaction: the adapter makes a new envelope at each MAIL FROM.
  const verifications = new WeakMap<Readonly<Envelope>, Promise<Verification>>();
  const verification = (envelope: Readonly<Envelope>): Promise<Verification> => {
    let pending = verifications.get(envelope);
    if (!pending) {
      pending = verifyAddress(senderOf(envelope), verifyOptions);
      verifications.set(envelope, pending);
    }
    return pending;
  };
  const logFields = (v: Verification): Record<string, unknown> => ({ cbv: v.result, cbvDetail: v.detail, cbvMs: v.durationMs, cbvCached: v.fromCache });
  /** The refusal the options ask for, if any. */
  const refusal = (v: Verification): PluginRecipientResult => {
    const log = logFields(v);
    if (rejectInvalid && v.result === 'invalid') return { action: 'reject', reply: CBV_REJECT_REPLY, log };
    if (tempfailOnTempfail && v.result === 'tempfail') return { action: 'tempfail', reply: CBV_TEMPFAIL_REPLY, log };
    return undefined;
  };
  /** The refusal at RCPT, if the probe answers within rcptWaitMs; otherwise none yet (check() decides). */
  const refusalInTime = async (envelope: Readonly<Envelope>): Promise<PluginRecipientResult> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), rcptWaitMs)));
    try {
      const v = await Promise.race([verification(envelope), late]);
      return v && refusal(v);
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    name: 'cbv',
    begin(envelope) {
      // A failure (a broken cache) is for check() to meet and turn into the fallback, not for the process.
      if (senderOf(envelope) !== '') verification(envelope).catch(() => undefined);
    },
    ...(refuseAtRcpt ? { recipient: (envelope: Readonly<Envelope>) => (senderOf(envelope) === '' ? undefined : refusalInTime(envelope)) } : {}),
    async check(message, envelope) {
      const forged = header ? message.headers.remove(header) : 0;
      if (senderOf(envelope) === '') return { action: 'accept', changed: forged > 0, log: { cbv: 'skipped (null sender)' } };
      const v = await verification(envelope);
      const refused = refusal(v);
      if (refused) return refused;
      if (header) message.headers.add(header, reportValue(v));
      return { action: 'accept', changed: header !== false || forged > 0, log: logFields(v) };
    },
    close: closeVerificationCaches,
  };
}
