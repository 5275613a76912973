import { smtpReply } from '../milter/session.js';
import { jsonFields } from './json-fields.js';
import type { PluginRecipientResult, PluginResult } from './pipeline.js';

const ACTIONS = new Set(['accept', 'quarantine', 'reject', 'tempfail', 'discard']);

/**
 * Names a plugin's log fields may not take: the facts of the line itself (what the message is, what
 * became of it, when, which event), which a plugin must not be able to rewrite in the log or the figures.
 */
export const RESERVED_FIELDS: ReadonlySet<string> = new Set(['time', 'event', 'worker', 'stage', 'queueId', 'messageId', 'sender', 'recipients', 'recipient', 'client', 'verdict', 'quarantine', 'oversize']);

/** What a value is, for an error message: a plugin author must see at once what came back. */
function describe(value: unknown): string {
  try {
    if (typeof value === 'string') return JSON.stringify(value);
    if (value === null || typeof value !== 'object') return String(value);
    return JSON.stringify(value).slice(0, 200);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * The fields of an answer, each read exactly once, into values of our own. An answer is the plugin's
 * object: a getter, a proxy or the plugin itself a moment later could make a second read say something
 * else than the one that was checked (a reject checked, an accept acted on).
 */
function read(value: unknown, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`returned ${describe(value)}, not { action, ... }`);
  const fields: Record<string, unknown> = {};
  for (const key of keys) fields[key] = (value as Record<string, unknown>)[key];
  return fields;
}

function checkedReply(reply: unknown, action: unknown): string | undefined {
  if (reply === undefined) return undefined;
  if (typeof reply !== 'string') throw new Error(`reply must be a string, got ${describe(reply)}`);
  // What the session would refuse to send is refused here, where the plugin can be named.
  let replyClass: string;
  try {
    ({ replyClass } = smtpReply(reply));
  } catch {
    throw new Error(`reply ${describe(reply)} is not an SMTP reply ("550 5.7.1 text", "450 4.7.1 text")`);
  }
  const expected = action === 'reject' ? '5' : '4';
  if (replyClass !== expected) throw new Error(`action "${String(action)}" with a ${replyClass}xx reply ${describe(reply)}: a reject takes 5xx, a tempfail 4xx`);
  return reply;
}

/** A plugin's log fields as data of our own, without the names reserved for the line's facts. */
function checkedLog(log: unknown): Record<string, unknown> | undefined {
  if (log === undefined) return undefined;
  if (typeof log !== 'object' || log === null || Array.isArray(log)) throw new Error(`log must be an object of fields, got ${describe(log)}`);
  return Object.fromEntries(Object.entries(jsonFields(log as Record<string, unknown>)).filter(([key]) => !RESERVED_FIELDS.has(key)));
}

/**
 * A plugin's answer about a message, checked at run time: plugins are plain JavaScript modules, and what
 * does not have the documented shape (an unknown action, `'reject'` as a bare string, `{ action:
 * 'Reject' }`, a reply of the wrong class) must be an error of that plugin, never an accept. What is
 * returned is a new object, built from one read of each field. A quarantine without a reason is held,
 * with the plugin's name as the reason.
 */
export function checkPluginResult(value: unknown, plugin: string): PluginResult {
  const { action, reply, reason, changed, log } = read(value, ['action', 'reply', 'reason', 'changed', 'log']);
  if (typeof action !== 'string' || !ACTIONS.has(action)) throw new Error(`returned an unknown action ${describe(action)} (accept, quarantine, reject, tempfail or discard)`);
  if (changed !== undefined && typeof changed !== 'boolean') throw new Error(`changed must be true or false, got ${describe(changed)}`);
  const common = { ...(changed === undefined ? {} : { changed }), ...(log === undefined ? {} : { log: checkedLog(log) }) };
  switch (action) {
    case 'reject':
    case 'tempfail': {
      const text = checkedReply(reply, action);
      return { action, ...(text === undefined ? {} : { reply: text }), ...common };
    }
    case 'quarantine':
      if (reason === undefined) return { action, reason: `held by plugin ${plugin}`, ...common };
      if (typeof reason !== 'string' || reason.trim() === '') throw new Error(`a quarantine's reason must be a non-empty string, got ${describe(reason)}`);
      return { action, reason, ...common };
    default:
      return { action: action as 'accept' | 'discard', ...common };
  }
}

/** A plugin's answer about one recipient: undefined (or an accept) lets it through; a refusal is checked, and copied, as above. */
export function checkRecipientResult(value: unknown): PluginRecipientResult {
  if (value === undefined || value === null) return undefined;
  const { action, reply, log } = read(value, ['action', 'reply', 'log']);
  if (action === 'accept') return undefined;
  if (action !== 'reject' && action !== 'tempfail') throw new Error(`returned an unknown action ${describe(action)} for a recipient (reject or tempfail, or undefined to let it through)`);
  const text = checkedReply(reply, action);
  const fields = checkedLog(log);
  return { action, ...(text === undefined ? {} : { reply: text }), ...(fields === undefined ? {} : { log: fields }) };
}
