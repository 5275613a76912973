import { encodeResponse, MilterProtocolError, parseCommand, type MilterResponse, type MtaCommand } from './codec.js';
import { FilterError, type ChangeSet, type FilterFactory, type MacroStage, type MilterContext, type MilterFilter, type NoReplyStage, type Verdict } from './filter.js';
import { Action, CHUNK_SIZE, Command, MacroStage as MacroStageCode, PROTOCOL_VERSION, Protocol } from './protocol.js';
import type { Frame } from './codec.js';

export interface SessionOptions {
  /** What a filter's exception or timeout turns into. Default 'tempfail': never a silent pass. */
  fallback: 'tempfail' | 'reject' | 'accept';
  /** Time a hook may take; end of message gets `eomTimeoutMs`. */
  hookTimeoutMs: number;
  eomTimeoutMs: number;
  /**
   * While an end of message is being worked on, a PROGRESS this often, so that the MTA keeps waiting:
   * Sendmail allows each reply 10 s by default (T=R:10s) and takes PROGRESS only then; Postfix restarts
   * its clock too. 0: never. Default 5 s.
   */
  progressIntervalMs?: number;
  /**
   * Macro bytes (names and values) a connection may hold, over all stages; an MTA sends a few hundred.
   * Past it the connection is closed as a protocol error, instead of the daemon holding whatever a peer
   * sends. Default 64 KiB.
   */
  maxMacroBytes?: number;
  log: (event: string, fields: Record<string, unknown>) => void;
}

/** The defaults of SessionOptions, in one place (the server, the harness and the daemon's config use them). */
export const SESSION_DEFAULTS = { fallback: 'tempfail', hookTimeoutMs: 25_000, eomTimeoutMs: 250_000, progressIntervalMs: 5000, maxMacroBytes: 64 * 1024 } as const satisfies Omit<SessionOptions, 'log'>;

/** Hooks and the protocol bit that tells the MTA not to send the event when a filter lacks the hook. */
const SKIPPABLE: ReadonlyArray<[keyof MilterFilter, number]> = [
  ['connect', Protocol.NOCONNECT],
  ['helo', Protocol.NOHELO],
  ['envFrom', Protocol.NOMAIL],
  ['envRcpt', Protocol.NORCPT],
  ['data', Protocol.NODATA],
  ['header', Protocol.NOHDRS],
  ['eoh', Protocol.NOEOH],
  ['body', Protocol.NOBODY],
  ['unknown', Protocol.NOUNKNOWN],
];

/** The commands whose macros belong to one message, MAIL's first: they go with the message. */
const MESSAGE_MACRO_STAGES = [Command.MAIL, Command.RCPT, Command.DATA, Command.HEADER, Command.EOH, Command.BODY, Command.BODYEOB];

/** SMFIM_* by stage, for the macro lists of the negotiation. */
const MACRO_STAGES: Readonly<Record<MacroStage, number>> = {
  connect: MacroStageCode.CONNECT,
  helo: MacroStageCode.HELO,
  envFrom: MacroStageCode.ENVFROM,
  envRcpt: MacroStageCode.ENVRCPT,
  data: MacroStageCode.DATA,
  eoh: MacroStageCode.EOH,
  eom: MacroStageCode.EOM,
};

/** The bit that tells the MTA not to wait for an answer at each stage (SMFIP_NR_*). */
const NO_REPLY_BITS: Readonly<Record<NoReplyStage, number>> = {
  connect: Protocol.NR_CONN,
  helo: Protocol.NR_HELO,
  envFrom: Protocol.NR_MAIL,
  envRcpt: Protocol.NR_RCPT,
  data: Protocol.NR_DATA,
  header: Protocol.NR_HDR,
  eoh: Protocol.NR_EOH,
  body: Protocol.NR_BODY,
  unknown: Protocol.NR_UNKN,
};

const ALL_CHANGES = Action.ADDHDRS | Action.CHGHDRS | Action.CHGBODY | Action.ADDRCPT | Action.ADDRCPT_PAR | Action.DELRCPT | Action.QUARANTINE | Action.CHGFROM;
/** The SMFIF_* flag each change needs (inserting a header is adding one; deleting one is changing it). */
const CHANGE_ACTIONS: Readonly<Record<keyof ChangeSet, number>> = {
  addHeader: Action.ADDHDRS,
  insertHeader: Action.ADDHDRS,
  changeHeader: Action.CHGHDRS,
  deleteHeader: Action.CHGHDRS,
  replaceBody: Action.CHGBODY,
  addRecipient: Action.ADDRCPT | Action.ADDRCPT_PAR,
  deleteRecipient: Action.DELRCPT,
  changeSender: Action.CHGFROM,
  quarantine: Action.QUARANTINE,
};
const REPLY = /^([45])\d\d(?:[ -]|$)/;

/** A hook's time ran out: what its AbortSignal is aborted with then (a closed connection aborts it with another reason). */
export class HookTimeout extends Error {
  override name = 'HookTimeout';
}

/** Collects a filter's end-of-message changes, checked against what was negotiated. */
class CollectedChanges implements ChangeSet {
  readonly headers: MilterResponse[] = [];
  readonly envelope: MilterResponse[] = [];
  /** The new body's pieces, in the order replaceBody gave them; undefined: the body stays. */
  body: Buffer[] | undefined;
  quarantineReason: string | undefined;
  /** `leadingSpace`: HDR_LEADSPC was negotiated, so values go out verbatim, the space after the colon included. */
  constructor(
    private readonly actions: number,
    private readonly leadingSpace: boolean,
  ) {}

  private need(action: number, what: string): void {
    if ((this.actions & action) === 0) throw new Error(`${what} was not negotiated with the MTA`);
  }
  /**
   * A value as it goes on the wire: LF folding only (the MTA adds the CR; Postfix would write CR CR LF),
   * and the space after the colon where the MTA takes values verbatim.
   */
  private wire(value: string): string {
    const folded = value.replace(/\r\n?/g, '\n');
    return this.leadingSpace ? ` ${folded}` : folded;
  }

  addHeader(name: string, value: string): void {
    this.need(Action.ADDHDRS, 'addHeader');
    this.headers.push({ type: 'addheader', name, value: this.wire(value) });
  }
  insertHeader(index: number, name: string, value: string): void {
    this.need(Action.ADDHDRS, 'insertHeader');
    this.headers.push({ type: 'insheader', index, name, value: this.wire(value) });
  }
  changeHeader(name: string, index: number, value: string): void {
    // Never empty, which would mean "delete" to the MTA: a header set to nothing keeps a blank.
    this.change(name, index, this.wire(value) || ' ');
  }
  deleteHeader(name: string, index: number): void {
    this.change(name, index, '');
  }
  private change(name: string, index: number, value: string): void {
    this.need(Action.CHGHDRS, 'changeHeader');
    this.headers.push({ type: 'chgheader', index, name, value });
  }
  replaceBody(body: Buffer): void {
    this.need(Action.CHGBODY, 'replaceBody');
    (this.body ??= []).push(body);
  }
  addRecipient(recipient: string, esmtpArgs?: string): void {
    this.need(esmtpArgs ? Action.ADDRCPT_PAR : Action.ADDRCPT, 'addRecipient');
    this.envelope.push(esmtpArgs ? { type: 'addrcpt', recipient, args: esmtpArgs } : { type: 'addrcpt', recipient });
  }
  deleteRecipient(recipient: string): void {
    this.need(Action.DELRCPT, 'deleteRecipient');
    this.envelope.push({ type: 'delrcpt', recipient });
  }
  changeSender(sender: string, esmtpArgs?: string): void {
    this.need(Action.CHGFROM, 'changeSender');
    this.envelope.push(esmtpArgs ? { type: 'chgfrom', sender, args: esmtpArgs } : { type: 'chgfrom', sender });
  }
  quarantine(reason: string): void {
    this.need(Action.QUARANTINE, 'quarantine');
    this.quarantineReason = reason.replace(/[\r\n]+/g, ' ') || 'quarantined';
  }

  /**
   * The safe order: header changes (deletions from the last index down, as Postfix renumbers), envelope
   * changes, quarantine, then the body replacement as one contiguous run of chunks (Postfix requires it).
   */
  responses(): MilterResponse[] {
    const deletions = this.headers.filter((r) => r.type === 'chgheader').sort((a, b) => (b as { index: number }).index - (a as { index: number }).index);
    const others = this.headers.filter((r) => r.type !== 'chgheader');
    const out: MilterResponse[] = [...deletions, ...others, ...this.envelope];
    if (this.quarantineReason !== undefined) out.push({ type: 'quarantine', reason: this.quarantineReason });
    if (this.body) {
      for (const piece of this.body) for (let i = 0; i < piece.length; i += CHUNK_SIZE) out.push({ type: 'replbody', chunk: piece.subarray(i, i + CHUNK_SIZE) });
      // An empty new body still replaces the old one.
      if (this.body.every((piece) => piece.length === 0)) out.push({ type: 'replbody', chunk: Buffer.alloc(0) });
    }
    return out;
  }
}

/** A custom reply as it goes to the MTA: CRLF between lines; throws when it is no SMTP reply. Its class: 4 or 5. */
export function smtpReply(text: string): { reply: string; replyClass: '4' | '5' } {
  const reply = text.replace(/\r?\n/g, '\r\n');
  const code = REPLY.exec(reply);
  if (!code || /[\r\n](?![\n\d])/.test(reply.replace(/\r\n/g, ''))) throw new Error(`invalid SMTP reply "${text}"`);
  return { reply, replyClass: code[1] as '4' | '5' };
}

function verdictResponse(verdict: Verdict | void): MilterResponse {
  if (verdict === undefined || verdict === 'continue') return { type: 'continue' };
  if (typeof verdict === 'string') return { type: verdict };
  // Sendmail reads the text as a printf format: a lone % must be doubled.
  return { type: 'replycode', reply: smtpReply(verdict.reply).reply.replace(/%/g, '%%') };
}

/**
 * One MTA connection: option negotiation, macros per stage, the hooks of a fresh filter per connection,
 * message state reset on ABORT and after end of message (the connection carries many messages), and a
 * configured fallback when a hook throws or takes too long.
 */
export class MilterSession {
  private filter: MilterFilter;
  /** The options in force: those of the message in progress, taken when it began. */
  private options: SessionOptions;
  private readonly optionsNow: () => SessionOptions;
  /** Writes frames; several at once go out together (one write for the whole end-of-message answer). */
  private readonly send: (frames: Buffer[]) => void;
  private readonly macros = new Map<number, Map<string, string>>();
  private actions = 0;
  private leadingSpace = false;
  /** Negotiated SMFIP_NR_* bits: stages the MTA does not wait for. */
  private noReply = 0;
  /** A verdict (or the fallback) from a stage that could not answer, for the next stage that can. */
  private pending: { verdict: Verdict; scope: 'connection' | 'message' } | undefined;
  private inMessage = false;

  /** Whether a message is in progress (between its first event and its end or ABORT). */
  get busy(): boolean {
    return this.inMessage;
  }
  /** After a final verdict for the message (accept/reject/discard), its remaining events get no hooks. */
  private messageDone = false;
  private closed = false;
  /** The controllers of the signals given to hooks running now (end of message). */
  private readonly running = new Set<AbortController>();
  /** The MTA closed the connection: a hook that starts now (an end of message still queued) is for nothing. */
  private gone = false;
  private readonly factory: FilterFactory;

  /**
   * `options` may be a function: it is asked again as each message begins, so that a reloaded
   * configuration (fallback, time limits) applies from the next message on a connection already open.
   */
  constructor(factory: FilterFactory, options: SessionOptions | (() => SessionOptions), send: (frames: Buffer[]) => void) {
    this.factory = factory;
    this.optionsNow = typeof options === 'function' ? options : () => options;
    this.options = this.optionsNow();
    this.send = send;
    this.filter = factory(this.context());
  }

  private context(): MilterContext {
    return { macro: (name) => this.macro(name) };
  }

  /** A macro by name, with or without braces ("i", "{auth_authen}"): the latest stage's wins, as libmilter searches backwards. */
  macro(name: string): string | undefined {
    const keys = name.startsWith('{') ? [name, name.slice(1, -1)] : [name, `{${name}}`];
    for (const stage of [...this.macros.keys()].reverse()) {
      for (const key of keys) {
        const value = this.macros.get(stage)?.get(key);
        if (value !== undefined) return value;
      }
    }
    return undefined;
  }

  private respond(response: MilterResponse): void {
    this.respondAll([response]);
  }

  private respondAll(responses: readonly MilterResponse[]): void {
    if (!this.closed && !this.gone) this.send(responses.map(encodeResponse));
  }

  /**
   * Runs a hook within its time limit; an exception or timeout is logged and reported as `failed`. A hook
   * that answers at once (the adapter's MAIL, RCPT, header and body hooks, most others') costs no timer: it cannot time out, it held the
   * thread. One that returns a promise races its timeout. `controller` (end of message) is aborted at the
   * timeout, and when the connection closes while the hook runs. `keepAlive`: PROGRESS meanwhile.
   */
  private async run<T>(stage: string, timeoutMs: number, hook: () => T | PromiseLike<T>, controller?: AbortController, keepAlive = false): Promise<{ failed: false; value: T } | { failed: true }> {
    const failed = (err: unknown): { failed: true } => {
      const facts = err instanceof FilterError ? err.fields : {};
      this.options.log('filter-error', { ...facts, stage, error: err instanceof Error ? err.message : String(err), fallback: this.options.fallback });
      return { failed: true };
    };
    // Aborted before it starts when the MTA is already gone (an end of message that was still queued).
    if (controller && this.gone) controller.abort(new Error('the MTA closed the connection'));
    let answer: T | PromiseLike<T>;
    try {
      answer = hook();
    } catch (err) {
      return failed(err);
    }
    if (typeof (answer as PromiseLike<T> | undefined)?.then !== 'function') return { failed: false, value: answer as T };
    let timer: NodeJS.Timeout | undefined;
    const progressMs = this.options.progressIntervalMs ?? SESSION_DEFAULTS.progressIntervalMs;
    const progress = keepAlive && progressMs > 0 ? setInterval(() => this.respond({ type: 'progress' }), progressMs) : undefined;
    if (controller) this.running.add(controller);
    try {
      const value = await Promise.race([
        answer,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const timeout = new HookTimeout(`${stage} took longer than ${timeoutMs} ms`);
            controller?.abort(timeout);
            reject(timeout);
          }, timeoutMs);
        }),
      ]);
      return { failed: false, value };
    } catch (err) {
      return failed(err);
    } finally {
      clearTimeout(timer);
      clearInterval(progress);
      if (controller) this.running.delete(controller);
    }
  }

  private negotiate(command: Extract<MtaCommand, { type: 'optneg' }>): void {
    const offeredProtocol = command.protocol || 0x3f;
    const offeredActions = command.actions || 0x0f;
    let protocol = 0;
    for (const [hook, bit] of SKIPPABLE) if (!this.filter[hook]) protocol |= bit;
    // Header values verbatim (no space eaten after the colon), when the MTA can.
    if (offeredProtocol & Protocol.HDR_LEADSPC) protocol |= Protocol.HDR_LEADSPC;
    for (const stage of this.filter.noReply ?? []) protocol |= NO_REPLY_BITS[stage];
    protocol &= offeredProtocol;
    this.leadingSpace = (protocol & Protocol.HDR_LEADSPC) !== 0;
    this.noReply = protocol & Object.values(NO_REPLY_BITS).reduce((a, b) => a | b, 0);
    const wanted = this.filter.actions ? this.filter.actions.reduce((bits, change) => bits | CHANGE_ACTIONS[change], 0) : ALL_CHANGES;
    this.actions = this.filter.eom ? wanted & offeredActions : 0;
    // Macro lists only to an MTA that offers to honour them; otherwise its defaults come, as before.
    const macros = new Map<number, string>();
    if (offeredActions & Action.SETSYMLIST) {
      for (const [stage, names] of Object.entries(this.filter.macros ?? {})) if (names && names.length > 0) macros.set(MACRO_STAGES[stage as MacroStage], names.join(' '));
    }
    const actions = macros.size > 0 ? this.actions | Action.SETSYMLIST : this.actions;
    this.respond({ type: 'optneg', version: Math.min(command.version, PROTOCOL_VERSION), actions, protocol, ...(macros.size > 0 ? { macros } : {}) });
  }

  /**
   * `keepMailMacros`: the message ends because the next one's MAIL has come (Sendmail sends no ABORT after
   * a milter settled a message early), and the MAIL macros just received are that next message's.
   */
  private resetMessage(keepMailMacros = false): void {
    this.inMessage = false;
    this.messageDone = false;
    if (this.pending?.scope === 'message') this.pending = undefined;
    for (const stage of MESSAGE_MACRO_STAGES.slice(keepMailMacros ? 1 : 0)) this.macros.delete(stage);
  }

  /** A stage's verdict: the response, and whether it ends the message (no more hooks until the next one). */
  /** A message begins (with its first event: MAIL may have been negotiated away), under the options in force now. */
  private enterMessage(): void {
    if (this.inMessage) return;
    this.options = this.optionsNow();
    this.inMessage = true;
  }

  private async stage(name: NoReplyStage, hook: (() => Verdict | void | Promise<Verdict | void>) | undefined, scope: 'connection' | 'message' | 'recipient', silent = false, controller?: AbortController): Promise<void> {
    if (scope !== 'connection') this.enterMessage();
    // Silent: a piece of a packet, answered (when the MTA waits) with its last piece.
    const answered = !silent && (this.noReply & NO_REPLY_BITS[name]) === 0;
    if (this.messageDone && scope !== 'connection') {
      if (answered) this.respond({ type: 'continue' });
      return;
    }
    if (answered && this.pending) return this.answerPending(scope);
    const outcome = hook && !this.pending ? await this.run(name, this.options.hookTimeoutMs, hook, controller) : undefined;
    const verdict = outcome === undefined ? undefined : outcome.failed ? this.options.fallback : outcome.value;
    if (!answered) {
      // The MTA is not listening now: keep anything but 'continue' for the next answer. A failure always
      // counts; a recipient's own verdict cannot be given to that recipient any more, and is not turned
      // into a verdict on the whole message: it is logged and dropped.
      if (verdict === undefined || verdict === 'continue') return;
      // Accept and discard at RCPT are about the whole message: kept for the next answer, as any other stage's.
      if (scope === 'recipient' && !outcome?.failed && verdict !== 'accept' && verdict !== 'discard') {
        this.options.log('filter-error', { stage: name, error: 'a no-reply RCPT hook returned a verdict: ignored (answer RCPT to refuse one recipient)' });
        return;
      }
      this.pending = { verdict, scope: scope === 'connection' ? 'connection' : 'message' };
      return;
    }
    let response: MilterResponse;
    try {
      response = verdictResponse(verdict as Verdict | void);
    } catch (err) {
      this.options.log('filter-error', { stage: name, error: (err as Error).message, fallback: this.options.fallback });
      response = verdictResponse(this.options.fallback);
    }
    // A verdict other than continue settles the message (or, at RCPT, only that recipient).
    if (scope === 'message' && response.type !== 'continue') this.messageDone = true;
    // At RCPT, accept and discard are about the whole message (the MTA drops it for every recipient).
    if (scope === 'recipient' && (response.type === 'accept' || response.type === 'discard')) this.messageDone = true;
    this.respond(response);
  }

  /** Answers with a verdict kept from a no-reply stage; it settles the message (or the connection). */
  private answerPending(at: 'connection' | 'message' | 'recipient'): void {
    const { verdict, scope } = this.pending as { verdict: Verdict; scope: 'connection' | 'message' };
    let response: MilterResponse;
    try {
      response = verdictResponse(verdict);
    } catch (err) {
      this.options.log('filter-error', { stage: 'no-reply hook', error: (err as Error).message, fallback: this.options.fallback });
      response = verdictResponse(this.options.fallback);
    }
    // A connection-level verdict stays for every later message; a message-level one ends with its message.
    // At RCPT it answers each recipient in turn (a RCPT verdict only concerns that recipient).
    if (at !== 'recipient') {
      if (scope === 'message') this.pending = undefined;
      if (this.inMessage && response.type !== 'continue') this.messageDone = true;
    }
    this.respond(response);
  }

  private async endOfMessage(): Promise<void> {
    // Answered without the eom hook: the filter still hears that the message is over (its abort hook).
    if (this.pending && !this.messageDone) {
      this.answerPending('message');
      await this.abortMessage();
      return;
    }
    if (this.messageDone || !this.filter.eom) {
      this.respond({ type: 'continue' });
      await this.abortMessage();
      return;
    }
    const changes = new CollectedChanges(this.actions, this.leadingSpace);
    const eom = this.filter.eom;
    const controller = new AbortController();
    const outcome = await this.run('eom', this.options.eomTimeoutMs, () => eom.call(this.filter, changes, controller.signal), controller, true);
    let responses: MilterResponse[];
    try {
      const final = verdictResponse(outcome.failed ? this.options.fallback : (outcome.value as Verdict | void));
      // Changes only matter to a message that is delivered; a refused one, or a failed hook, sends none.
      const delivered = !outcome.failed && (final.type === 'continue' || final.type === 'accept');
      responses = delivered ? [...changes.responses(), final] : [final];
    } catch (err) {
      this.options.log('filter-error', { stage: 'eom', error: (err as Error).message, fallback: this.options.fallback });
      responses = [verdictResponse(this.options.fallback)];
    }
    this.respondAll(responses);
    this.resetMessage();
  }

  /** Handles one frame; resolves when its reply (if any) has been sent. */
  async handle(frame: Frame): Promise<void> {
    const command = parseCommand(frame);
    // After QUIT the connection is over (libmilter reads nothing more): a message begun then would never end.
    if (this.closed && command.type !== 'quit') throw new MilterProtocolError(`${command.type} after QUIT`);
    const f = this.filter;
    switch (command.type) {
      case 'optneg':
        return this.negotiate(command);
      case 'macro': {
        this.macros.delete(command.stage);
        this.macros.set(command.stage, command.macros);
        const limit = this.options.maxMacroBytes ?? SESSION_DEFAULTS.maxMacroBytes;
        let bytes = 0;
        for (const stage of this.macros.values()) for (const [name, value] of stage) bytes += name.length + value.length;
        if (bytes > limit) throw new MilterProtocolError(`macros of ${bytes} bytes, over the limit of ${limit} (maxMacroBytes)`);
        return;
      }
      case 'connect':
        return this.stage('connect', f.connect && (() => f.connect?.call(f, { hostname: command.hostname, family: command.family, port: command.port, address: command.address })), 'connection');
      case 'helo':
        return this.stage('helo', f.helo && (() => f.helo?.call(f, command.name)), 'connection');
      case 'mail':
        if (this.inMessage) await this.abortMessage(true);
        return this.stage('envFrom', f.envFrom && (() => f.envFrom?.call(f, command.sender, command.args)), 'message');
      case 'rcpt': {
        // A signal only where the MTA waits: creating one costs more than many a hook (node 20).
        const controller = f.envRcpt && (this.noReply & Protocol.NR_RCPT) === 0 ? new AbortController() : undefined;
        return this.stage('envRcpt', f.envRcpt && (() => f.envRcpt?.call(f, command.recipient, command.args, controller?.signal)), 'recipient', false, controller);
      }
      case 'data':
        return this.stage('data', f.data && (() => f.data?.call(f)), 'message');
      case 'header':
        return this.stage('header', f.header && (() => f.header?.call(f, command.name, command.value)), 'message');
      case 'eoh':
        return this.stage('eoh', f.eoh && (() => f.eoh?.call(f)), 'message');
      case 'body':
        return this.stage('body', f.body && (() => f.body?.call(f, command.chunk)), 'message', frame.continued === true);
      case 'eom':
        this.enterMessage();
        if (command.chunk.length > 0 && f.body && !this.messageDone && !this.pending) {
          const outcome = await this.run('body', this.options.hookTimeoutMs, () => f.body?.call(f, command.chunk));
          if (outcome.failed) this.pending = { verdict: this.options.fallback, scope: 'message' };
        }
        return this.endOfMessage();
      case 'abort':
        // No reply to ABORT; it resets the message only (connection and HELO data stay).
        return this.abortMessage();
      case 'unknown':
        return this.stage('unknown', f.unknown && (() => f.unknown?.call(f, command.line)), 'connection');
      case 'quit-nc':
        await this.end();
        // A new SMTP connection over the same milter connection: nothing of the old one carries over.
        this.closed = false;
        this.macros.clear();
        this.pending = undefined;
        this.filter = this.factory(this.context());
        return;
      case 'quit':
        return this.end();
    }
  }

  private async abortMessage(keepMailMacros = false): Promise<void> {
    if (this.inMessage && this.filter.abort) await this.run('abort', this.options.hookTimeoutMs, () => this.filter.abort?.call(this.filter));
    this.resetMessage(keepMailMacros);
  }

  /** The MTA closed the connection: whatever a hook is still doing is for nothing. */
  disconnected(): void {
    this.gone = true;
    for (const controller of this.running) controller.abort(new Error('the MTA closed the connection'));
  }

  /** QUIT or the end of the connection: abort a message in progress, then close the filter. */
  async end(): Promise<void> {
    if (this.closed) return;
    if (this.inMessage) await this.abortMessage();
    this.closed = true;
    if (this.filter.close) await this.run('close', this.options.hookTimeoutMs, () => this.filter.close?.call(this.filter));
  }
}
