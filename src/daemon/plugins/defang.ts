import { defang } from '../../defang/engine.js';
import type { PolicyInput } from '../../defang/policy.js';
import type { MilterPlugin } from '../pipeline.js';

/** The reply to a message the policy refuses: it says why, in ASCII, and nothing about what was found. */
export const DEFANG_REJECT_REPLY = '550 5.7.1 Message refused: content not accepted by policy';

/**
 * The daemon's default work: defang every message. Changed messages are delivered defanged; quarantine
 * holds them in the MTA's hold queue; reject refuses them.
 */
export function defangPlugin(policy: PolicyInput = {}): MilterPlugin {
  return {
    name: 'defang',
    check(message, envelope) {
      const report = defang(message, policy, { envelope: { sender: envelope.sender, recipients: envelope.recipients } });
      const log = { defang: report.header };
      if (report.verdict === 'reject') return { action: 'reject', reply: DEFANG_REJECT_REPLY, log };
      if (report.verdict === 'quarantine') return { action: 'quarantine', reason: report.header, log };
      return { action: 'accept', changed: report.verdict === 'changed', log };
    },
  };
}
