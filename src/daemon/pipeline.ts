import type { MimeMessage } from '../mime/message.js';
import type { Envelope, MessageTransform, RecipientResult, TransformResult } from '../milter/message-adapter.js';

/**
 * What a plugin says about a message: what becomes of it, whether it changed the message, and the
 * fields it adds to the message's log line (e.g. `{ defang: 'changed; …' }`).
 */
export type PluginResult = TransformResult & { changed?: boolean; log?: Record<string, unknown> };
/** A plugin's word on one recipient: undefined lets it through; the log fields go on the refusal's line. */
export type PluginRecipientResult = (NonNullable<RecipientResult> & { log?: Record<string, unknown> }) | undefined;

/** What the plugins before this one decided about the message. */
export interface PipelineState {
  /** The first quarantine reason given so far. */
  quarantine: string | undefined;
  changed: boolean;
  /** The log fields so far (e.g. `defang`, the report header's value). */
  fields: Readonly<Record<string, unknown>>;
  /**
   * Aborted when the message's time is up (the MTA was answered with the fallback and will retry) or the
   * MTA has gone. A plugin that acts outside (sends, stores) checks it first; the pipeline runs no plugin
   * after it is aborted.
   */
  signal: AbortSignal;
}

/**
 * One step of the daemon's work on a message (defang, callback verification, a module of one's own).
 * `check` may change the message in place; the adapter turns those changes into milter modifications.
 */
export interface MilterPlugin {
  readonly name: string;
  check(message: MimeMessage, envelope: Envelope, state: PipelineState): PluginResult | Promise<PluginResult>;
  /**
   * Called at the first recipient the MTA accepts (sender known, message not yet) to start work that
   * `check` will pick up, such as a callback probe. Not waited for: what fails here is for `check` to
   * meet (and to turn into a verdict, or the fallback).
   */
  begin?(envelope: Readonly<Envelope>): void;
  /**
   * Called at each RCPT TO, before the message: a reject or tempfail refuses that recipient with its
   * reply, as Postfix's reject_unverified_sender does. A plugin that has it makes the MTA wait for an
   * answer to every RCPT; one that has nothing to say about recipients should not have it.
   */
  recipient?(envelope: Readonly<Envelope>, recipient: string): PluginRecipientResult | Promise<PluginRecipientResult>;
  /** Releases what the plugin holds (connections, caches) when the daemon stops. */
  close?(): Promise<void>;
}

/** The verdict of a whole message, as logged. */
export type MessageVerdict = 'clean' | 'changed' | 'quarantine' | 'reject' | 'tempfail' | 'discard' | 'unfiltered';

/**
 * Receives one record per message: envelope facts, the verdict, and each plugin's fields; and one per
 * recipient refused at RCPT, marked `stage: 'rcpt'` (there is no message then).
 */
export type MessageLog = (fields: Record<string, unknown>) => void;

/**
 * Plugins in order, as one transform. The first reject, tempfail or discard ends the pipeline (later
 * plugins do not run); a quarantine is kept and the rest still run (the first reason is the one given).
 * A plugin that throws ends the message with the milter's fallback (tempfail by default), never a pass;
 * so does running out of time, and no plugin starts after that.
 */
export function pipeline(plugins: readonly MilterPlugin[], log: MessageLog): MessageTransform {
  const transform: MessageTransform = async (message, envelope, signal) => {
    const fields: Record<string, unknown> = {};
    const state: PipelineState = { quarantine: undefined, changed: false, fields, signal };
    let final: TransformResult | undefined;
    for (const plugin of plugins) {
      signal.throwIfAborted();
      const result = await plugin.check(message, envelope, state);
      Object.assign(fields, result.log);
      state.changed ||= result.changed === true;
      if (result.action === 'quarantine') state.quarantine ??= result.reason;
      else if (result.action !== 'accept') {
        final = result;
        break;
      }
    }
    // The time ran out during the last plugin: the MTA has the fallback, so no verdict is logged.
    signal.throwIfAborted();
    const { quarantine, changed } = state;
    const verdict: MessageVerdict = final ? (final.action as MessageVerdict) : quarantine !== undefined ? 'quarantine' : changed ? 'changed' : 'clean';
    log({ queueId: envelope.queueId, sender: envelope.sender, recipients: envelope.recipients.length, client: envelope.client.address, verdict, ...fields });
    if (final) return final;
    return quarantine !== undefined ? { action: 'quarantine', reason: quarantine } : { action: 'accept' };
  };
  // Over the adapter's size limit: no plugin saw it, and the line says so (`unfiltered` when passed on).
  transform.oversize = (envelope, size, action) => {
    log({ queueId: envelope.queueId, sender: envelope.sender, recipients: envelope.recipients.length, client: envelope.client.address, verdict: action === 'reject' ? 'reject' : 'unfiltered', oversize: size });
  };
  transform.begin = (envelope) => {
    for (const plugin of plugins) {
      // An async begin is not waited for either: its failure is check()'s to meet, not the process's.
      const started: unknown = plugin.begin?.(envelope);
      if (started instanceof Promise) started.catch(() => undefined);
    }
  };
  const judges = plugins.filter((plugin) => plugin.recipient !== undefined);
  if (judges.length > 0) {
    // A refused recipient gets its own log line, as Postfix logs "NOQUEUE: reject: RCPT" once per recipient.
    transform.recipient = async (envelope, recipient) => {
      for (const plugin of judges) {
        const refused = await plugin.recipient?.(envelope, recipient);
        if (!refused) continue;
        log({ stage: 'rcpt', sender: envelope.sender, recipient, client: envelope.client.address, verdict: refused.action, ...refused.log });
        return refused;
      }
      return undefined;
    };
  }
  return transform;
}
