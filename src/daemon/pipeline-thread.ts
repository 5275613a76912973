/**
 * A pipeline thread: the daemon's plugins run here, never in the thread that speaks to the MTAs, so that
 * a plugin that blocks, loops or burns CPU cannot stall any connection, and one that overruns its time
 * can be stopped (the thread is terminated and replaced). Whatever a plugin does wrong here — a throw in
 * a timer it set, a rejection it never awaited — fails the message it was working on, or at worst this
 * thread: never the process.
 */
import { readFile } from 'node:fs/promises';
import { workerData, type MessagePort } from 'node:worker_threads';
import { FilterError } from '../milter/filter.js';
import type { Envelope, MessageOutcome, RecipientResult } from '../milter/message-work.js';
import { transformMessage } from '../milter/transform-message.js';
import { buildPipeline } from './config.js';
import { errorText } from './error-text.js';
import { jsonFields } from './json-fields.js';
import { pipeline, type MilterPlugin, type Pipeline } from './pipeline.js';
import { currentPluginScope } from './plugin-scope.js';
import type { FromThread, MessageBytes, ThreadData, ThreadFailure, ThreadStart, ToThread } from './thread-messages.js';

const given = workerData as ThreadStart | undefined;
if (!given?.port) throw new Error('pipeline-thread.js runs as a worker thread of the daemon');
// The daemon's channel, out of reach of the plugins: workerData is theirs to read.
const port: MessagePort = given.port;
delete given.port;
const data: ThreadData = given;

const post = (message: FromThread, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

/** One envelope object per message, as plugins expect (the callback verifier keys its probe on it). */
const envelopes = new Map<number, Envelope>();
const live = new WeakSet<Envelope>();
/** Controllers of the calls running now, so that an abort reaches them. */
const running = new Map<number, AbortController>();
/**
 * The message records a call's work logs, by the message they are about, sent back with the call's
 * answer (one message to the connection loop, not two). One call at a time per message: the MTA waits.
 */
const callRecords = new Map<Envelope, Record<string, unknown>[]>();
let transform: Pipeline | undefined;

/** The thread's envelope of a message, brought up to date (recipients come one by one). */
function envelopeOf(id: number, sent: Envelope): Envelope {
  const known = envelopes.get(id);
  if (known) return Object.assign(known, sent);
  envelopes.set(id, sent);
  live.add(sent);
  return sent;
}

/** The message is over: a failure in work its plugins left behind can fail it no more. */
function forget(id: number): void {
  const envelope = envelopes.get(id);
  if (envelope) live.delete(envelope);
  envelopes.delete(id);
}

/**
 * The last resort, for a throw nobody caught and a rejection nobody handled: the plugin that started the
 * work is known from its scope. Its message fails if it is still running or yet to end; if it is over,
 * the error is logged. With no plugin to name, the thread cannot be trusted: it asks to be replaced.
 */
function outside(err: unknown, what: string): void {
  const scope = currentPluginScope();
  if (!scope) {
    post({ type: 'fatal', error: `${what}: ${errorText(err)}` });
    return;
  }
  const { plugin, envelope } = scope;
  if (envelope && live.has(envelope as Envelope) && transform?.fail(envelope, plugin, err)) return;
  // Not a filter-error: no message gets the fallback for it (there is none to fail any more).
  post({ type: 'log', event: 'plugin-error', fields: { plugin, queueId: envelope?.queueId, error: `plugin ${plugin}: ${what}: ${errorText(err)}`, note: envelope ? 'after its message was answered: nothing to fail' : 'outside any message' } });
}
/** The last resort must not fail itself: if it does, the thread asks to be replaced. */
function lastResort(err: unknown, what: string): void {
  try {
    outside(err, what);
  } catch {
    post({ type: 'fatal', error: `${what}, and it could not be told apart` });
  }
}
process.on('uncaughtException', (err) => lastResort(err, 'a callback it set threw'));
process.on('unhandledRejection', (reason) => lastResort(reason, 'a promise it did not wait for was rejected'));

// A plugin cannot signal the daemon's own process (nor its cluster primary, nor its process group): a
// slip such as process.kill(process.pid) would stop it for every connection.
const kill = process.kill.bind(process);
process.kill = (pid: number, signal?: string | number): true => {
  if (pid <= 0 || pid === process.pid || pid === process.ppid) throw new Error(`a plugin may not signal the daemon (process.kill(${pid}))`);
  return kill(pid, signal);
};

/** A failure as it crosses threads; the session logs its fields with it. */
function failure(err: unknown): ThreadFailure {
  return { message: errorText(err), fields: err instanceof FilterError ? jsonFields(err.fields) : {} };
}

async function answer(call: number, envelope: Envelope, work: (signal: AbortSignal) => Promise<MessageOutcome | RecipientResult>): Promise<void> {
  const controller = new AbortController();
  running.set(call, controller);
  const records: Record<string, unknown>[] = [];
  callRecords.set(envelope, records);
  const aborted = new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true }));
  aborted.catch(() => undefined);
  try {
    // Answered at once when aborted, whatever the plugins are still doing: an answer shows the thread is alive.
    const value = await Promise.race([work(controller.signal), aborted]);
    // A new body goes over as it is, handed over rather than copied (transformMessage gives it memory of its own).
    const transfer = value && 'edits' in value ? value.edits.flatMap((edit) => (edit.change === 'replaceBody' ? [edit.args[0].buffer as ArrayBuffer] : [])) : [];
    post({ type: 'result', call, ok: true, value, records }, [...new Set(transfer)]);
  } catch (err) {
    post({ type: 'result', call, ok: false, error: failure(err), records });
  } finally {
    running.delete(call);
    if (callRecords.get(envelope) === records) callRecords.delete(envelope);
  }
}

/**
 * The recipient checks a message missed at RCPT (its connection was made before the pipeline checked
 * recipients): done at its end, where one refusal can only refuse the whole message.
 */
async function refusal(work: Pipeline, envelope: Envelope): Promise<MessageOutcome | undefined> {
  for (const recipient of envelope.recipients) {
    const refused = await work.recipient?.(envelope, recipient);
    if (refused) return { verdict: refused.reply ? { reply: refused.reply } : refused.action, edits: [] };
  }
  return undefined;
}

async function blocks(message: MessageBytes): Promise<Uint8Array[]> {
  if ('file' in message) return [message.header, await readFile(message.file)];
  return [new Uint8Array(message.bytes, 0, message.headerLength), new Uint8Array(message.bytes, message.headerLength)];
}

async function closeThread(plugins: readonly MilterPlugin[]): Promise<void> {
  for (const plugin of plugins) await plugin.close?.().catch((err: unknown) => post({ type: 'log', event: 'plugin-close-failed', fields: { error: errorText(err) } }));
  post({ type: 'closed' });
}

async function start(): Promise<void> {
  let plugins: MilterPlugin[];
  try {
    plugins = await buildPipeline(data.pipeline, data.baseDirectory, (event, fields) => post({ type: 'log', event, fields: jsonFields(fields) }));
  } catch (err) {
    post({ type: 'start-failed', error: errorText(err) });
    return;
  }
  const work = pipeline(plugins, (fields, envelope) => {
    const records = envelope && callRecords.get(envelope as Envelope);
    if (records) records.push(fields);
    else post({ type: 'message-log', fields });
  });
  transform = work;
  port.on('message', (message: ToThread) => {
    switch (message.type) {
      case 'begin':
        work.begin?.(envelopeOf(message.id, message.envelope));
        return;
      case 'recipient': {
        const envelope = envelopeOf(message.id, message.envelope);
        void answer(message.call, envelope, async () => {
          const refused = await work.recipient?.(envelope, message.recipient);
          return refused && (refused.reply === undefined ? { action: refused.action } : { action: refused.action, reply: refused.reply });
        });
        return;
      }
      case 'run': {
        const envelope = envelopeOf(message.id, message.envelope);
        const run = async (signal: AbortSignal): Promise<MessageOutcome> => {
          if (message.checkRecipients) {
            const refused = await refusal(work, envelope);
            if (refused) return refused;
          }
          return transformMessage(await blocks(message.message), envelope, work, signal);
        };
        // Its end is the message's last step: the thread forgets it then (no word of its end is sent).
        void answer(message.call, envelope, run).finally(() => forget(message.id));
        return;
      }
      case 'abort':
        running.get(message.call)?.abort(new Error('the time for this message is up, or its MTA has gone'));
        return;
      case 'end':
        forget(message.id);
        return;
      case 'close':
        void closeThread(plugins);
        return;
    }
  });
  post({ type: 'ready', checksRecipients: work.recipient !== undefined, begins: plugins.some((plugin) => plugin.begin !== undefined), plugins: plugins.map((plugin) => plugin.name) });
}

void start();
