import { hostname } from 'node:os';
import { createDsn } from '../../dsn/create-dsn.js';
import { sendDsn, type SendDsnOptions } from '../../dsn/send-dsn.js';
import { decideDsn } from '../../dsn/suppression.js';
import type { TemplateName } from '../../dsn/templates.js';
import { routedResolver } from '../../smtp/routed-resolver.js';
import type { MilterPlugin } from '../pipeline.js';
import { errorText } from '../error-text.js';

/** Where a notice is logged: one `notice` line per notice sent, refused or failed. */
export type NoticeLog = (fields: Record<string, unknown>) => void;

export interface NotifyPluginOptions {
  /** Our host name in the notice (Reporting-MTA, From: MAILER-DAEMON@…). Default os.hostname(). */
  reportingMta?: string;
  /**
   * Hand notices to this relay, best the local MTA (e.g. 127.0.0.1:25), which queues and retries them.
   * Without it they go straight to the sender's MX, once.
   */
  relay?: { host: string; port?: number };
  /** Domains whose MX is a fixed host (as the cbv plugin's routes), for direct delivery. */
  routes?: Record<string, string>;
  port?: number;
  heloName?: string;
  /** Budget of one delivery attempt. Default 60 s. */
  timeoutMs?: number;
  /** The DSN template. Default 'defang' ("not delivered: content our policy does not accept"). */
  template?: TemplateName;
}

/**
 * Tells the sender when a message was accepted but will not be delivered: a quarantined message gets an
 * RFC 3464 "failed" notice (the defang template, with the defang report). Never for SMTP-time refusals (the
 * client already has the reply: a notice would be backscatter), and never where RFC 3461/3834 forbid one
 * (null sender, MAILER-DAEMON, a DSN, auto-submitted mail). Put it last in the pipeline. The notice is
 * sent after the verdict, without delaying it; the daemon waits for notices in flight when it stops.
 */
export function notifyPlugin(options: NotifyPluginOptions, log: NoticeLog): MilterPlugin {
  const reportingMta = options.reportingMta ?? hostname();
  const inFlight = new Set<Promise<void>>();
  const send: SendDsnOptions = {
    to: '',
    relay: options.relay,
    resolver: options.routes ? routedResolver(options.routes) : undefined,
    port: options.port,
    heloName: options.heloName ?? reportingMta,
    timeoutMs: options.timeoutMs,
  };
  return {
    name: 'notify',
    check(message, envelope, state) {
      if (state.quarantine === undefined) return { action: 'accept' };
      const recipients = envelope.recipients.map((r) => ({ finalRecipient: r, action: 'failed' as const, status: '5.7.1', diagnosticCode: `550 5.7.1 ${state.quarantine}` }));
      const dsnEnvelope = { mailFrom: envelope.sender, ret: 'HDRS' as const };
      const decision = decideDsn(message, dsnEnvelope, recipients);
      if (!decision.allowed) return { action: 'accept', log: { notice: `not sent (${decision.reason})` } };
      let dsn: Buffer;
      try {
        // Headers only: the notice must not carry the content it reports (RET=HDRS).
        dsn = createDsn({ original: message, reportingMta, recipients, envelope: dsnEnvelope, template: options.template ?? 'defang', variables: { defangReport: String(state.fields.defang ?? state.quarantine) } });
      } catch (err) {
        // A notice that cannot be made must not hold up the message it is about.
        return { action: 'accept', log: { notice: `not sent (${errorText(err)})` } };
      }
      const sending = sendDsn(dsn, { ...send, to: envelope.sender }).then(
        (result) => log({ queueId: envelope.queueId, to: envelope.sender, status: result.status, response: result.response }),
        (err: unknown) => log({ queueId: envelope.queueId, to: envelope.sender, status: 'error', response: errorText(err) }),
      );
      inFlight.add(sending);
      void sending.finally(() => inFlight.delete(sending));
      return { action: 'accept', log: { notice: 'queued' } };
    },
    async close() {
      await Promise.all(inFlight);
    },
  };
}
