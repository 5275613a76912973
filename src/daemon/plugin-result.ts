import { smtpReply } from '../milter/session.js';
import type { PluginRecipientResult, PluginResult } from './pipeline.js';

const ACTIONS = new Set(['accept', 'quarantine', 'reject', 'tempfail', 'discard']);

type Shape = Record<string, unknown>;

/** What a value is, for an error message: a plugin author must see at once what came back. */
function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return String(value);
  try {
    return JSON.stringify(value).slice(0, 200);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function checkReply(result: Shape): void {
  if (result.reply === undefined) return;
  if (typeof result.reply !== 'string') throw new Error(`reply must be a string, got ${describe(result.reply)}`);
  // What the session would refuse to send is refused here, where the plugin can be named.
  let replyClass: string;
  try {
    ({ replyClass } = smtpReply(result.reply));
  } catch {
    throw new Error(`reply ${describe(result.reply)} is not an SMTP reply ("550 5.7.1 text", "450 4.7.1 text")`);
  }
  const expected = result.action === 'reject' ? '5' : '4';
  if (replyClass !== expected) throw new Error(`action "${String(result.action)}" with a ${replyClass}xx reply ${describe(result.reply)}: a reject takes 5xx, a tempfail 4xx`);
}

function checkLog(result: Shape): void {
  if (result.log !== undefined && (typeof result.log !== 'object' || result.log === null || Array.isArray(result.log))) throw new Error(`log must be an object of fields, got ${describe(result.log)}`);
}

/**
 * A plugin's answer about a message, checked at run time: plugins are plain JavaScript modules, and what
 * does not have the documented shape (an unknown action, `'reject'` as a bare string, `{ action:
 * 'Reject' }`, a reply of the wrong class) must be an error of that plugin, never an accept.
 * A quarantine without a reason is held, with the plugin's name as the reason.
 */
export function checkPluginResult(value: unknown, plugin: string): PluginResult {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`returned ${describe(value)}, not { action, ... }`);
  const result = value as Shape;
  if (typeof result.action !== 'string' || !ACTIONS.has(result.action)) throw new Error(`returned an unknown action ${describe(result.action)} (accept, quarantine, reject, tempfail or discard)`);
  if (result.changed !== undefined && typeof result.changed !== 'boolean') throw new Error(`changed must be true or false, got ${describe(result.changed)}`);
  checkLog(result);
  if (result.action === 'reject' || result.action === 'tempfail') checkReply(result);
  if (result.action === 'quarantine') {
    if (result.reason === undefined) return { ...(result as PluginResult), action: 'quarantine', reason: `held by plugin ${plugin}` };
    if (typeof result.reason !== 'string' || result.reason.trim() === '') throw new Error(`a quarantine's reason must be a non-empty string, got ${describe(result.reason)}`);
  }
  return result as PluginResult;
}

/** A plugin's answer about one recipient: undefined (or an accept) lets it through; a refusal is checked as above. */
export function checkRecipientResult(value: unknown): PluginRecipientResult {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`returned ${describe(value)}, not undefined or { action: 'reject' | 'tempfail', ... }`);
  const result = value as Shape;
  if (result.action === 'accept') return undefined;
  if (result.action !== 'reject' && result.action !== 'tempfail') throw new Error(`returned an unknown action ${describe(result.action)} for a recipient (reject or tempfail, or undefined to let it through)`);
  checkLog(result);
  checkReply(result);
  return result as PluginRecipientResult;
}
