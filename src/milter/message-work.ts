import type { MimeMessage } from '../mime/message.js';
import type { BodyBuffer } from './body-buffer.js';
import type { ChangeSet, Verdict } from './filter.js';

/** The envelope of the message being filtered. */
export interface Envelope {
  sender: string;
  recipients: string[];
  /**
   * Connection facts for logs and policies, from the macros sent with MAIL FROM: the client's IP address
   * ({client_addr}), and its HELO name where the MTA has a macro for it (Sendmail's `s`; Postfix has none).
   */
  client: { address: string | undefined; helo: string | undefined };
  queueId: string | undefined;
}

/**
 * What a whole-message transform says becomes of the message (after any changes it made to it in place).
 * `quarantine` holds the message (with its reason) after applying the changes.
 */
export type TransformResult = { action: 'accept' } | { action: 'quarantine'; reason: string } | { action: 'reject' | 'tempfail'; reply?: string } | { action: 'discard' };
/** What becomes of one recipient: undefined lets it through. */
export type RecipientResult = Extract<TransformResult, { action: 'reject' | 'tempfail' }> | undefined;
/** What becomes of a message over `maxMessageBytes`: refused (552 5.3.4), or passed on unfiltered. */
export type OversizeAction = 'reject' | 'accept';

/**
 * A whole-message transform: it may change the parsed message in place, and says what becomes of it.
 * `signal`: aborted when the message's time is up or the MTA has gone (see MilterFilter.eom).
 */
export type MessageTransform = ((message: MimeMessage, envelope: Envelope, signal: AbortSignal) => TransformResult | Promise<TransformResult>) & {
  /**
   * Called at the first recipient the MTA accepts, when the sender is known and the message is not: work
   * that can start early (a callback probe) overlaps with the transfer of the message. Not at MAIL FROM:
   * the MTA has not yet checked recipients and relaying then, and any client could set probes going.
   * Not waited for.
   */
  begin?(envelope: Readonly<Envelope>): void;
  /**
   * Called at each RCPT TO, before the message: a reject or tempfail refuses that recipient with its
   * reply. Having it makes the MTA wait for an answer to every RCPT.
   */
  recipient?(envelope: Readonly<Envelope>, recipient: string): RecipientResult | Promise<RecipientResult>;
  /**
   * Told of a message over `maxMessageBytes`, which the adapter answers by itself (it was neither kept
   * nor parsed), for the log: `size` is every header and body byte that came.
   */
  oversize?(envelope: Readonly<Envelope>, size: number, action: OversizeAction): void;
};

/** One call on a ChangeSet, as plain data: it can be sent to another thread and replayed there. */
export type Edit = { [K in keyof ChangeSet]: { change: K; args: Parameters<ChangeSet[K]> } }[keyof ChangeSet];

/** What the work on a message answers at end of message: its verdict, and the changes for a delivered one. */
export interface MessageOutcome {
  verdict: Verdict;
  edits: Edit[];
}

/** A message as the adapter collected it. */
export interface CollectedMessage {
  /** The header block as the MTA holds it: the fields as sent (LF folding made CRLF) and the blank line. */
  header: Buffer;
  /** The body; the adapter discards it once the work is done. */
  body: BodyBuffer;
  /**
   * Whether its recipients were checked at RCPT. Not when the connection was made before the work began
   * to check recipients (a reloaded configuration): the work then checks them at the end, and a refusal
   * refuses the whole message, never lets it through unchecked.
   */
  recipientsChecked: boolean;
}

/**
 * Where the work on each message is done: in the adapter's own thread (a MessageTransform, through
 * `transformWork`), or elsewhere (the daemon's pipeline threads). The adapter opens a job per message
 * at MAIL FROM, and every later step of that message goes through it.
 */
export interface MessageWork {
  /** Whether jobs check recipients at RCPT (the MTA must then wait for those answers). Read when a connection is made. */
  readonly checksRecipients: boolean;
  open(envelope: Envelope): MessageJob;
}

export interface MessageJob {
  /** The first recipient the MTA accepted (MessageTransform.begin). */
  begin(): void;
  /** A recipient's check; `signal` aborts when the MTA has had the fallback for it. */
  recipient(recipient: string, signal: AbortSignal | undefined): RecipientResult | Promise<RecipientResult>;
  /** End of message; rejects with the reason when the work failed (the session gives the fallback). */
  run(message: CollectedMessage, signal: AbortSignal): Promise<MessageOutcome>;
  /** The outcome `run` gave goes to the MTA as it is (in time, its changes accepted): the moment to log it. */
  answered(): void;
  /** The message was over maxMessageBytes and answered without any work (MessageTransform.oversize). */
  oversize(size: number, action: OversizeAction): void;
  /** The message is over (answered, aborted, its connection gone): whatever the job holds goes. */
  close(): void;
}
