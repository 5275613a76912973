import { defang } from '../defang/engine.js';
import type { PolicyInput } from '../defang/policy.js';
import type { Envelope, MessageTransform } from './message-adapter.js';

/** One line per message, for the daemon's log. */
export type MessageLog = (fields: Record<string, unknown>) => void;

/**
 * The daemon's default work: defang every message. Changed messages are delivered defanged; quarantine
 * holds them in the MTA's hold queue; reject refuses them with a reply that says why, in ASCII.
 */
export function defangTransform(policy: PolicyInput, log: MessageLog): MessageTransform {
  return (message, envelope: Envelope) => {
    const report = defang(message, policy, { envelope: { sender: envelope.sender, recipients: envelope.recipients } });
    log({ event: 'message', queueId: envelope.queueId, sender: envelope.sender, recipients: envelope.recipients.length, verdict: report.verdict, defang: report.header });
    if (report.verdict === 'reject') return { action: 'reject', reply: '550 5.7.1 Message refused: content not accepted by policy' };
    if (report.verdict === 'quarantine') return { action: 'quarantine', reason: report.header };
    return { action: 'accept' };
  };
}
