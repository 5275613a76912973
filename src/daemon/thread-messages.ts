import type { MessagePort } from 'node:worker_threads';
import type { Verdict } from '../milter/filter.js';
import type { Edit, Envelope, MessageOutcome, RecipientResult } from '../milter/message-work.js';
import type { PluginConfig } from './config.js';

/** What a pipeline thread is started with: the plugins to build, as the config names them. */
export interface ThreadData {
  pipeline: PluginConfig[];
  /** Relative paths in the config (policies, modules) are relative to it. */
  baseDirectory: string;
}

/**
 * The daemon's channel to a thread, given at its start and then taken out of its workerData: the
 * thread's parentPort stays to the plugins, and what a plugin writes there is not taken for an answer.
 */
export interface ThreadStart extends ThreadData {
  port?: MessagePort;
}

/**
 * A message's bytes on their way to a thread: the header block and, in the same memory (handed over,
 * not copied), the body; or the file a large body was spilled to, which the thread reads itself.
 */
export type MessageBytes = { bytes: ArrayBuffer; headerLength: number } | { header: Uint8Array; file: string };

/** The connection loop's requests. `id` names a message, `call` one request that is answered. */
export type ToThread =
  | { type: 'begin'; id: number; envelope: Envelope }
  | { type: 'recipient'; call: number; id: number; envelope: Envelope; recipient: string }
  /** `checkRecipients`: check them first (they were not at RCPT). */
  | { type: 'run'; call: number; id: number; envelope: Envelope; checkRecipients: boolean; message: MessageBytes }
  /** The time for that call is up, or its MTA has gone: stop, and answer at once. */
  | { type: 'abort'; call: number }
  /** The message is over without an end of message (aborted, its connection gone): forget it. */
  | { type: 'end'; id: number }
  /** Close the plugins (a notice in flight is sent first), then say so. */
  | { type: 'close' };

/** A failure as it crosses threads: its text and the facts of its log line. */
export interface ThreadFailure {
  message: string;
  fields: Record<string, unknown>;
}

export type FromThread =
  | { type: 'ready'; checksRecipients: boolean; begins: boolean; plugins: string[] }
  | { type: 'start-failed'; error: string }
  /** A call's answer, with the message records its work logged. */
  | { type: 'result'; call: number; ok: true; value: MessageOutcome | RecipientResult; records: Record<string, unknown>[] }
  | { type: 'result'; call: number; ok: false; error: ThreadFailure; records: Record<string, unknown>[] }
  /** A message record logged outside any call. */
  | { type: 'message-log'; fields: Record<string, unknown> }
  /** Any other log line: a plugin's own (notices), or a failure no message can meet any more. */
  | { type: 'log'; event: string; fields: Record<string, unknown> }
  /** An error that no plugin can be named for: the thread cannot be trusted any more. */
  | { type: 'fatal'; error: string }
  | { type: 'closed' };


const VERDICTS = new Set(['continue', 'accept', 'reject', 'tempfail', 'discard']);
const CHANGES = new Set(['addHeader', 'insertHeader', 'changeHeader', 'deleteHeader', 'replaceBody', 'addRecipient', 'deleteRecipient', 'changeSender', 'quarantine']);

/** A verdict from a thread, checked: anything else is a fault of that thread, never a pass. */
function checkedVerdict(value: unknown): Verdict {
  if (typeof value === 'string' && VERDICTS.has(value)) return value as Verdict;
  if (typeof value === 'object' && value !== null && typeof (value as { reply?: unknown }).reply === 'string') return { reply: (value as { reply: string }).reply };
  throw new Error(`a thread answered the verdict ${JSON.stringify(value)}`);
}

/** An end-of-message answer from a thread, checked before the connection loop acts on it. */
export function checkedOutcome(value: unknown): MessageOutcome {
  const { verdict, edits } = (value ?? {}) as { verdict?: unknown; edits?: unknown };
  if (!Array.isArray(edits) || !edits.every((edit) => CHANGES.has((edit as Edit)?.change) && Array.isArray((edit as Edit).args))) throw new Error('a thread answered changes of no known kind');
  return { verdict: checkedVerdict(verdict), edits: edits as Edit[] };
}

/** A recipient check's answer from a thread, checked: a refusal, or undefined. */
export function checkedRecipient(value: unknown): RecipientResult {
  if (value === undefined) return undefined;
  const { action, reply } = value as { action?: unknown; reply?: unknown };
  if ((action !== 'reject' && action !== 'tempfail') || (reply !== undefined && typeof reply !== 'string')) throw new Error(`a thread answered the recipient check ${JSON.stringify(value)}`);
  return reply === undefined ? { action } : { action, reply };
}

/** A result's message records, checked: plain objects of fields. */
function checkedRecords(records: unknown): Record<string, unknown>[] {
  if (!Array.isArray(records) || !records.every((record) => typeof record === 'object' && record !== null && !Array.isArray(record))) throw new Error('a thread answered message records of no known shape');
  return records as Record<string, unknown>[];
}

/** A call's answer from a thread, all of it checked before the connection loop acts on any of it. */
export function checkedResult(message: FromThread & { type: 'result' }, kind: 'run' | 'recipient'): { ok: true; value: MessageOutcome | RecipientResult; records: Record<string, unknown>[] } | { ok: false; error: ThreadFailure; records: Record<string, unknown>[] } {
  const records = checkedRecords(message.records);
  if (message.ok === true) return { ok: true, value: kind === 'run' ? checkedOutcome(message.value) : checkedRecipient(message.value), records };
  const error = message.error as Partial<ThreadFailure> | undefined;
  if (message.ok !== false || typeof error?.message !== 'string' || typeof error.fields !== 'object' || error.fields === null) throw new Error('a thread answered a failure of no known shape');
  return { ok: false, error: { message: error.message, fields: error.fields }, records };
}
