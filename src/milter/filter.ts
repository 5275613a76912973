import type { ConnectFamily } from './codec.js';

/**
 * What a filter says at each stage. `{ reply }` is a custom SMTP reply ("550 5.7.1 No thanks"): its class
 * (4xx or 5xx) makes it a tempfail or a reject.
 */
export type Verdict = 'continue' | 'accept' | 'reject' | 'tempfail' | 'discard' | { reply: string };

export interface ConnectInfo {
  hostname: string;
  family: ConnectFamily;
  port: number | undefined;
  /** IP address (without Sendmail's "IPv6:" prefix) or socket path. */
  address: string | undefined;
}

/** The changes a filter makes at end of message; the engine sends them in a safe order. */
export interface ChangeSet {
  addHeader(name: string, value: string): void;
  /** index 0 = top of the message as delivered. */
  insertHeader(index: number, name: string, value: string): void;
  /**
   * The `index`-th (1-based) header of that name, as the milter saw them. An empty value keeps the
   * header, blank (to the MTA an empty value means delete, as with libmilter's smfi_chgheader): use
   * deleteHeader to delete.
   */
  changeHeader(name: string, index: number, value: string): void;
  deleteHeader(name: string, index: number): void;
  /**
   * Appends to the new body, as libmilter's smfi_replacebody and pymilter's replacebody do: a filter
   * that writes the body in pieces calls it once per piece; the first call drops the original body.
   */
  replaceBody(body: Buffer): void;
  addRecipient(recipient: string, esmtpArgs?: string): void;
  deleteRecipient(recipient: string): void;
  changeSender(sender: string, esmtpArgs?: string): void;
  quarantine(reason: string): void;
}

/**
 * A filter's failure with the facts its log line needs (the plugin, the queue ID, the Message-ID): the
 * session logs them beside the error when it gives the fallback.
 */
export class FilterError extends Error {
  readonly fields: Readonly<Record<string, unknown>>;
  constructor(message: string, fields: Record<string, unknown> = {}, options?: ErrorOptions) {
    super(message, options);
    this.name = 'FilterError';
    this.fields = fields;
  }
}

type Hook<A extends unknown[]> = (...args: A) => Verdict | void | Promise<Verdict | void>;

/**
 * A filter is a per-connection object with the hooks it needs; hooks it lacks are negotiated away, so the
 * MTA does not even send those events (pymilter's style). A hook returning nothing means 'continue'.
 */
/** Stages whose events carry macros (SMFIM_*). */
export type MacroStage = 'connect' | 'helo' | 'envFrom' | 'envRcpt' | 'data' | 'eoh' | 'eom';

/** Stages a filter can take without the MTA waiting for its answer. */
export type NoReplyStage = 'connect' | 'helo' | 'envFrom' | 'envRcpt' | 'data' | 'header' | 'eoh' | 'body' | 'unknown';

export interface MilterFilter {
  /**
   * Stages whose hooks only observe (pymilter's @noreply): the MTA sends those events without waiting for
   * an answer (SMFIP_NR_*), which saves a round trip per header and body chunk. A verdict or an exception
   * from such a hook is not lost: it becomes the answer to the next event the MTA waits for.
   */
  noReply?: readonly NoReplyStage[];
  /**
   * The changes this filter may make at end of message (libmilter's SMFIF_* flags): only those are asked
   * of the MTA, and any other is refused at end of message. Without it, every change the MTA offers.
   */
  actions?: readonly (keyof ChangeSet)[];
  /**
   * The macros to send with each stage's event, instead of the MTA's defaults (smfi_setsymlist: Postfix
   * and Sendmail ≥ 8.14 honour it). Connection facts such as {client_addr} can be had at MAIL this way,
   * which spares the CONNECT and HELO events (and a wake-up of the filter each) on every connection.
   */
  macros?: Partial<Record<MacroStage, readonly string[]>>;
  connect?: Hook<[ConnectInfo]>;
  helo?: Hook<[string]>;
  envFrom?: Hook<[string, string[]]>;
  /**
   * `signal`, when the MTA waits for the answer, is aborted when the hook's time is up (the MTA then has
   * the fallback for that recipient): a result that comes later must not count. Undefined for a no-reply
   * RCPT, whose failure fails the whole message anyway.
   */
  envRcpt?: Hook<[string, string[], AbortSignal | undefined]>;
  data?: Hook<[]>;
  /** The value as the MTA sent it: raw bytes, folded lines joined by LF. */
  header?: Hook<[string, Buffer]>;
  eoh?: Hook<[]>;
  /** The body as it arrives, in pieces (a BODY packet split across socket reads comes as several). */
  body?: Hook<[Buffer]>;
  /**
   * End of message. `signal` is aborted when the time for it is up (the MTA has then been answered with the
   * fallback, and will retry) or the MTA has gone: work still running should stop, and act on nothing
   * outside (no notice sent, nothing stored) for a message that was not accepted.
   */
  eom?: Hook<[ChangeSet, AbortSignal]>;
  abort?: () => void | Promise<void>;
  close?: () => void | Promise<void>;
  unknown?: Hook<[string]>;
}

/** What a filter can read about its connection. */
export interface MilterContext {
  /** A macro by name, with or without braces ("i", "{auth_authen}"). */
  macro(name: string): string | undefined;
}

export type FilterFactory = (context: MilterContext) => MilterFilter;
