import { BodyBuffer, type MemoryBudget } from './body-buffer.js';
import type { FilterFactory, MilterFilter, Verdict } from './filter.js';
import type { CollectedMessage, Envelope, MessageJob, MessageTransform, MessageWork, OversizeAction, RecipientResult } from './message-work.js';
import { applyEdits, headerBlock, transformMessage } from './transform-message.js';

export const OVERSIZE_REPLY = '552 5.3.4 Message too big for the content filter';

/**
 * The engine-agnostic adapter: collects the headers and body chunks of a message and hands the whole
 * message at end of message to its work (a transform, here or in another thread), then sends the changes
 * that work answered.
 */
export interface AdapterOptions {
  /** Body bytes kept in memory per message; beyond, the body goes to a temporary file. Default 8 MiB. */
  memoryThresholdBytes?: number;
  /**
   * Body bytes all messages may hold in memory together (share one budget between the filters of a
   * process); past it, bodies go to temporary files. Default: none beyond the per-message threshold.
   */
  memoryBudget?: MemoryBudget;
  /** Where such files go. Default os.tmpdir(). */
  temporaryDirectory?: string;
  /**
   * The largest message (header and body bytes) kept and filtered. Past it the message is dropped at
   * once and answered with `oversizeAction`: a body is read back into memory whole at end of message,
   * and Sendmail sets no size limit by default. Default 64 MiB.
   */
  maxMessageBytes?: number;
  /** Default 'reject': mail the filter could not look at does not pass. */
  oversizeAction?: OversizeAction;
}

/** The defaults of AdapterOptions, in one place. */
export const ADAPTER_DEFAULTS = { memoryThresholdBytes: 8 * 1024 * 1024, maxMessageBytes: 64 * 1024 * 1024, oversizeAction: 'reject' } as const;

/**
 * The macros the adapter asks for at MAIL FROM: the client's address and name, its HELO name (Sendmail),
 * and the queue ID where it is known by then (Sendmail; Postfix gives it at end of message).
 */
const MAIL_MACROS = ['{client_addr}', '{client_name}', 's', 'i'] as const;

/** What the adapter holds of the message in progress. */
interface MessageInProgress {
  /** The limits it was begun under. */
  maxMessageBytes: number;
  oversizeAction: OversizeAction;
  headers: [string, Buffer][];
  body: BodyBuffer;
  envelope: Envelope;
  job: MessageJob;
  /** Header and body bytes received. */
  size: number;
  /** Recipients whose check the MTA waited for at RCPT. */
  checkedRecipients: number;
  /** Past maxMessageBytes: nothing more is kept. */
  oversize: boolean;
}

/** A transform's work, done in the adapter's own thread. */
export function transformWork(transform: MessageTransform): MessageWork {
  return {
    checksRecipients: transform.recipient !== undefined,
    open: (envelope): MessageJob => ({
      begin: () => transform.begin?.(envelope),
      recipient: (recipient) => transform.recipient?.(envelope, recipient),
      // A spilled body is read once, and its file is gone before the transform runs.
      run: async ({ header, body }: CollectedMessage, signal) => transformMessage([header, ...(await body.take())], envelope, transform, signal),
      answered: () => {},
      oversize: (size, action) => transform.oversize?.(envelope, size, action),
      close: () => {},
    }),
  };
}

/**
 * A milter filter that hands whole messages to `work`: a transform (run in this thread), or a
 * MessageWork of one's own (the daemon's runs in worker threads). `options` may be a function: it is
 * asked again for each message (a reloaded configuration applies from the next message).
 */
export function messageFilter(work: MessageTransform | MessageWork, options: AdapterOptions | (() => AdapterOptions) = {}): FilterFactory {
  const source: MessageWork = typeof work === 'function' ? transformWork(work) : work;
  const optionsNow = typeof options === 'function' ? options : () => options;
  return (context): MilterFilter => {
    // One per message, never reused: an end of message that outlives its timeout (the MTA has had the
    // fallback and gone on to the next message) keeps working on its own body and envelope.
    let message: MessageInProgress | undefined;
    const checksRecipients = source.checksRecipients;
    const begin = (sender: string): MessageInProgress => {
      const options = optionsNow();
      const envelope: Envelope = { sender, recipients: [], client: { address: context.macro('{client_addr}'), helo: context.macro('s') }, queueId: context.macro('i') };
      return {
        maxMessageBytes: options.maxMessageBytes ?? ADAPTER_DEFAULTS.maxMessageBytes,
        oversizeAction: options.oversizeAction ?? ADAPTER_DEFAULTS.oversizeAction,
        headers: [],
        body: new BodyBuffer({ thresholdBytes: options.memoryThresholdBytes ?? ADAPTER_DEFAULTS.memoryThresholdBytes, directory: options.temporaryDirectory, budget: options.memoryBudget }),
        envelope,
        job: source.open(envelope),
        size: 0,
        checkedRecipients: 0,
        oversize: false,
      };
    };
    /** Adds to the message's size; the first time it passes the limit, drops what was kept. */
    const count = (m: MessageInProgress, bytes: number): void | Promise<void> => {
      m.size += bytes;
      if (m.oversize || m.size <= m.maxMessageBytes) return;
      m.oversize = true;
      m.headers = [];
      return m.body.discard();
    };
    // MAIL is always negotiated (the adapter has its hook): this only covers an MTA that skips it anyway.
    const current = (): MessageInProgress => (message ??= begin(''));
    /** The message is over: its body and its job go. */
    const finish = (m: MessageInProgress | undefined): void | Promise<void> => {
      m?.job.close();
      return m?.body.discard();
    };
    const drop = (): void | Promise<void> => {
      const dropped = message;
      message = undefined;
      return finish(dropped);
    };
    return {
      // Every hook before end of message only collects: the MTA need not wait for any of them — but for
      // RCPT when the work may refuse recipients.
      noReply: checksRecipients ? ['envFrom', 'header', 'body'] : ['envFrom', 'envRcpt', 'header', 'body'],
      // No connect or helo hook: what the envelope needs of the connection comes with MAIL FROM, and
      // the MTA is spared two events per connection (measured: a fifth more messages/s at 2 KB).
      macros: { envFrom: [...MAIL_MACROS], eom: ['i'] },
      // What the work's edits may be: header edits, the body, quarantine — never the envelope.
      actions: ['addHeader', 'changeHeader', 'deleteHeader', 'replaceBody', 'quarantine'],
      envFrom(sender) {
        const previous = drop();
        message = begin(sender);
        return previous;
      },
      envRcpt(recipient, _args, signal) {
        const m = current();
        // A signal comes only where the MTA waits for this answer: only then can a check refuse this
        // recipient. Where it does not (the connection was negotiated before its work checked
        // recipients, even across QUIT_NC), the check comes at the end, for the whole message.
        const answered = signal !== undefined;
        const admit = (refused: RecipientResult): Verdict => {
          if (refused) return refused.reply ? { reply: refused.reply } : refused.action;
          // Too late: the MTA has the fallback for this recipient, which is not one of the message's.
          if (signal?.aborted) return 'continue';
          m.envelope.recipients.push(recipient);
          if (answered) m.checkedRecipients++;
          if (m.envelope.recipients.length === 1) m.job.begin();
          return 'continue';
        };
        // Only a recipient check that is waited for makes a promise (and the session's timer for it).
        const refused = answered ? m.job.recipient(recipient, signal) : undefined;
        return typeof (refused as PromiseLike<RecipientResult> | undefined)?.then === 'function' ? Promise.resolve(refused).then(admit) : admit(refused as RecipientResult);
      },
      header(name, value) {
        const m = current();
        const dropped = count(m, name.length + value.length + 3);
        if (m.oversize) return dropped;
        m.headers.push([name, value]);
      },
      body(chunk) {
        const m = current();
        const dropped = count(m, chunk.length);
        return m.oversize ? dropped : m.body.push(chunk);
      },
      async eom(changes, signal) {
        const m = current();
        message = undefined;
        m.envelope.queueId = context.macro('i') ?? m.envelope.queueId;
        try {
          if (m.oversize) {
            m.job.oversize(m.size, m.oversizeAction);
            return m.oversizeAction === 'accept' ? 'continue' : { reply: OVERSIZE_REPLY };
          }
          const outcome = await m.job.run({ header: headerBlock(m.headers), body: m.body, recipientsChecked: m.checkedRecipients === m.envelope.recipients.length }, signal);
          applyEdits(outcome.edits, changes);
          // Not when the time ran out meanwhile: the MTA has the fallback, and that is what counts.
          if (!signal.aborted) m.job.answered();
          return outcome.verdict;
        } finally {
          await finish(m);
        }
      },
      abort: drop,
      close: drop,
    };
  };
}
