import type { MimeMessage } from '../mime/message.js';
import { FilterError } from '../milter/filter.js';
import type { Envelope, MessageTransform, OversizeAction, RecipientResult, TransformResult } from '../milter/message-work.js';
import { checkPluginResult, checkRecipientResult, RESERVED_FIELDS } from './plugin-result.js';
import { inPluginScope } from './plugin-scope.js';
import { errorText } from './error-text.js';

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
   * `check` will pick up, such as a callback probe. Not waited for; if it fails, the message gets the
   * fallback when it ends.
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
 * recipient refused at RCPT, marked `stage: 'rcpt'` (there is no message then). The fields are plain
 * JSON data. `envelope`: the message the record is about.
 */
export type MessageLog = (fields: Record<string, unknown>, envelope?: Readonly<Envelope>) => void;

/** The pipeline as a transform, and the way to fail a message from outside a plugin's own call. */
export interface Pipeline extends MessageTransform {
  /**
   * A plugin failed for this message outside its own call (a throw in a timer or callback it set, a
   * rejection it never awaited): the message's end meets it, now if it is running, or when it comes.
   * False when the message is over, so that nothing will: the caller logs it.
   */
  fail(envelope: Readonly<Envelope>, plugin: string, error: unknown): boolean;
}

/** The fields that name a message in its log lines. */
export function messageFacts(envelope: Readonly<Envelope>, messageId?: string): Record<string, unknown> {
  return { queueId: envelope.queueId, messageId, sender: envelope.sender, recipients: envelope.recipients.length, client: envelope.client.address };
}

/** A message over maxMessageBytes (no plugin saw it): its line says so, `unfiltered` when passed on. */
export function oversizeRecord(envelope: Readonly<Envelope>, size: number, action: OversizeAction): Record<string, unknown> {
  return { ...messageFacts(envelope), verdict: action === 'reject' ? 'reject' : 'unfiltered', oversize: size };
}


/** A message's state between its first recipient and its end, for failures that come from outside. */
interface Trouble {
  /** The facts of its log lines, once its end has begun (the Message-ID is known then). */
  facts?: Record<string, unknown>;
  /** A failure recorded before the end (a begin that failed, a callback that threw). */
  failure?: PluginFailure;
  /** While the end runs: fails it at once. */
  interrupt?: (failure: PluginFailure) => void;
  over: boolean;
}

/** A plugin's failure as the pipeline names it (the plugin, the message): passed on as it is, never renamed. */
class PluginFailure extends FilterError {}

/** Waits for a plugin's answer, unless the message's time runs out or an outside failure comes first. */
function settle<T>(answer: T | PromiseLike<T>, signal: AbortSignal, trouble: Trouble): Promise<T> {
  if (typeof (answer as PromiseLike<T> | undefined)?.then !== 'function' && !signal.aborted) return Promise.resolve(answer);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    trouble.interrupt = reject;
    Promise.resolve(answer).then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
      // The next plugin's wait may have begun already: its interrupt stays.
      if (trouble.interrupt === reject) trouble.interrupt = undefined;
    });
  });
}

/**
 * Plugins in order, as one transform. The first reject, tempfail or discard ends the pipeline (later
 * plugins do not run); a quarantine is kept and the rest still run (the first reason is the one given).
 * Any failure of a plugin ends the message with the milter's fallback (tempfail by default), never a
 * pass: a throw, a rejected promise, an answer of the wrong shape, a failed `begin`, and (through
 * `fail`) a throw or rejection in work it started and did not await. So does running out of time, and
 * no plugin starts after that. Each failure names the plugin, the queue ID and the Message-ID.
 */
export function pipeline(plugins: readonly MilterPlugin[], log: MessageLog): Pipeline {
  const troubles = new WeakMap<Readonly<Envelope>, Trouble>();
  const troubleOf = (envelope: Readonly<Envelope>): Trouble => {
    let trouble = troubles.get(envelope);
    if (!trouble) troubles.set(envelope, (trouble = { over: false }));
    return trouble;
  };
  // A FilterError a plugin threw itself keeps its fields, but not those naming the line's own facts: the
  // plugin and the message are ours to name.
  const ownFields = (err: unknown): Record<string, unknown> => {
    const fields: unknown = err instanceof FilterError ? err.fields : undefined;
    if (typeof fields !== 'object' || fields === null) return {};
    try {
      return Object.fromEntries(Object.entries(fields).filter(([key]) => !RESERVED_FIELDS.has(key)));
    } catch {
      return {};
    }
  };
  const failure = (plugin: string, what: string, err: unknown, facts: Record<string, unknown>): PluginFailure =>
    err instanceof PluginFailure ? err : new PluginFailure(`plugin ${plugin}: ${what}: ${errorText(err)}`, { ...ownFields(err), plugin, ...facts }, { cause: err });
  /** A failure from outside the plugin's own call: it fails the end now if it runs, or when it comes. */
  const befall = (trouble: Trouble, err: PluginFailure): boolean => {
    if (trouble.over) return false;
    if (trouble.interrupt) trouble.interrupt(err);
    else trouble.failure ??= err;
    return true;
  };

  const transform = (async (message, envelope, signal) => {
    const trouble = troubleOf(envelope);
    const messageId = message.headers.get('message-id')?.trim();
    const facts = { queueId: envelope.queueId, messageId };
    trouble.facts = facts;
    try {
      if (trouble.failure) throw trouble.failure;
      const fields: Record<string, unknown> = {};
      let quarantine: string | undefined;
      let changed = false;
      let final: TransformResult | undefined;
      for (const plugin of plugins) {
        signal.throwIfAborted();
        // Each plugin sees what came before as a copy: what it does to that cannot change the outcome.
        const state: PipelineState = Object.freeze({ quarantine, changed, fields: Object.freeze({ ...fields }), signal });
        let answer: unknown;
        try {
          answer = await settle(inPluginScope({ plugin: plugin.name, envelope }, () => plugin.check(message, envelope, state)), signal, trouble);
        } catch (err) {
          if (signal.aborted) throw signal.reason;
          throw failure(plugin.name, 'check failed', err, facts);
        }
        let result: PluginResult;
        try {
          result = checkPluginResult(answer, plugin.name);
        } catch (err) {
          throw failure(plugin.name, 'bad answer', err, facts);
        }
        Object.assign(fields, result.log);
        changed ||= result.changed === true;
        if (result.action === 'quarantine') quarantine ??= result.reason;
        else if (result.action !== 'accept') {
          final = result;
          break;
        }
      }
      // The time ran out during the last plugin: the MTA has the fallback, so no verdict is logged.
      signal.throwIfAborted();
      // A failure from outside (a begin that failed late) that came while no plugin was being waited for.
      if (trouble.failure) throw trouble.failure;
      const verdict: MessageVerdict = final ? (final.action as MessageVerdict) : quarantine !== undefined ? 'quarantine' : changed ? 'changed' : 'clean';
      log({ ...messageFacts(envelope, messageId), verdict, ...(verdict === 'quarantine' ? { quarantine } : {}), ...fields }, envelope);
      if (final) return final;
      return quarantine !== undefined ? { action: 'quarantine', reason: quarantine } : { action: 'accept' };
    } finally {
      trouble.over = true;
    }
  }) as Pipeline;

  transform.fail = (envelope, plugin, error) => {
    const trouble = troubleOf(envelope);
    return befall(trouble, failure(plugin, 'work it started and did not wait for failed', error, trouble.facts ?? { queueId: envelope.queueId }));
  };
  transform.oversize = (envelope, size, action) => log(oversizeRecord(envelope, size, action), envelope);
  transform.begin = (envelope) => {
    for (const plugin of plugins) {
      if (!plugin.begin) continue;
      // Not waited for: a failure, now or later, fails the message at its end.
      const recordFailure = (err: unknown): void => {
        const trouble = troubleOf(envelope);
        befall(trouble, failure(plugin.name, 'begin failed', err, trouble.facts ?? { queueId: envelope.queueId }));
      };
      try {
        const started: unknown = inPluginScope({ plugin: plugin.name, envelope }, () => plugin.begin?.(envelope));
        if (typeof (started as PromiseLike<unknown> | undefined)?.then === 'function') (started as PromiseLike<unknown>).then(undefined, recordFailure);
      } catch (err) {
        recordFailure(err);
      }
    }
  };
  const judges = plugins.filter((plugin) => plugin.recipient !== undefined);
  if (judges.length > 0) {
    // A refused recipient gets its own log line, as Postfix logs "NOQUEUE: reject: RCPT" once per recipient.
    transform.recipient = async (envelope, recipient) => {
      for (const plugin of judges) {
        let refused: PluginRecipientResult;
        try {
          refused = checkRecipientResult(await inPluginScope({ plugin: plugin.name, envelope }, () => plugin.recipient?.(envelope, recipient)));
        } catch (err) {
          throw failure(plugin.name, 'recipient check failed', err, { queueId: envelope.queueId, recipient });
        }
        if (!refused) continue;
        log({ stage: 'rcpt', sender: envelope.sender, recipient, client: envelope.client.address, verdict: refused.action, ...refused.log }, envelope);
        return refused;
      }
      return undefined;
    };
  }
  return transform;
}
