import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { FilterError } from '../milter/filter.js';
import type { CollectedMessage, Envelope, MessageJob, MessageOutcome, MessageWork, OversizeAction, RecipientResult } from '../milter/message-work.js';
import { HookTimeout } from '../milter/session.js';
import { joinUnshared } from '../milter/transform-message.js';
import { errorText } from './error-text.js';
import { oversizeRecord, type MessageLog } from './pipeline.js';
import { outputLines } from './output-lines.js';
import { checkedResult, type FromThread, type ThreadData, type ThreadStart, type ToThread } from './thread-messages.js';

const ENTRY = new URL('./pipeline-thread.js', import.meta.url);
/** A thread that could not start, or died soon after it did, is replaced after a pause that doubles up to the last. */
const RESTART_DELAYS_MS = { first: 1000, most: 30_000 };
/** A thread that served this long before it died is replaced at once: the pauses start over. */
const HEALTHY_AFTER_MS = 10_000;
/** How long a closing thread's plugins have to finish (a notice being sent) before the thread is stopped. */
const CLOSE_TIMEOUT_MS = 60_000;
/** A message whose thread died for another message's fault is tried this many times in all. */
const MAX_ATTEMPTS = 2;

export interface ThreadPoolOptions {
  /** Threads that run the pipeline. */
  threads: number;
  /**
   * How long a thread has to answer once the time of one of its messages is up (it is asked to stop);
   * a thread that does not — a plugin that blocks it — is terminated and replaced.
   */
  graceMs: number;
  /** How long a thread may take to build its plugins (a module that loads for ever must not hold a start or a reload). */
  startTimeoutMs: number;
  /**
   * Bytes of messages the threads may work on at once (a thread holds each one whole, its body read
   * back): past it, ends of message wait their turn, in order; one larger than it goes alone.
   */
  workBudgetBytes: number;
  data: ThreadData;
  /** The daemon's log: the threads' events, and the plugins' own lines. */
  log: (event: string, fields: Record<string, unknown>) => void;
  /** The message records of the pipeline, logged once the MTA has the answer they describe. */
  messageLog: MessageLog;
}

interface Call {
  job: PoolJob;
  kind: 'run' | 'recipient';
  /** Builds the request, again for each attempt (a message's bytes are handed over, not copied). */
  request: (call: number) => { message: ToThread; transfer: ArrayBuffer[] };
  signal: AbortSignal | undefined;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  /** Answered, or given up (its time being up): what comes later is dropped. */
  settled: boolean;
  attempts: number;
  graceTimer?: NodeJS.Timeout;
}

/** What the threads report once their plugins are built. */
interface PipelineFacts {
  checksRecipients: boolean;
  /** Whether a plugin has early work (`begin`), which binds a message to its thread at its first recipient. */
  begins: boolean;
  plugins: string[];
}

class PipelineThread {
  readonly calls = new Map<number, Call>();
  readonly jobs = new Set<PoolJob>();
  state: 'starting' | 'ready' | 'closing' | 'gone' = 'starting';
  /** When it became ready: a thread that dies soon after is not replaced in a tight loop. */
  readySince: number | undefined;
  /** Why it is being stopped, for the log. */
  reason: string | undefined;
  /** The message it was stopped for: the others it held are not to blame, and are tried again elsewhere. */
  culprit: PoolJob | undefined;
  readonly ready: Promise<PipelineFacts>;
  settleStart!: (facts: PipelineFacts | Error) => void;

  /** `port`: the daemon's own channel to it (its parentPort is the plugins'). */
  constructor(
    readonly worker: Worker,
    readonly port: MessagePort,
  ) {
    this.ready = new Promise((resolve, reject) => (this.settleStart = (facts) => (facts instanceof Error ? reject(facts) : resolve(facts))));
    this.ready.catch(() => undefined);
  }
}

/**
 * The daemon's pipeline, in worker threads: the connection loop hands each message to a thread and
 * waits for its answer without ever running plugin code itself. A message is bound to one thread from
 * its first step that needs one (its plugins' `begin` and `check` must meet in the same thread), the
 * least busy. A thread whose message overran its time and that does not answer the abort within
 * `graceMs` is terminated and replaced; the other messages it held are tried again on another thread.
 * A thread that dies of itself (out of memory, an error no plugin can be named for) is replaced too;
 * its messages get the fallback.
 */
export class PipelineThreads implements MessageWork {
  private readonly threads = new Set<PipelineThread>();
  private facts: PipelineFacts = { checksRecipients: false, begins: false, plugins: [] };
  private nextMessage = 1;
  private nextCall = 1;
  private openJobs = 0;
  /** Calls waiting for a ready thread (all of them being replaced). */
  private readonly waiting = new Set<() => void>();
  private restartDelayMs = 0;
  /** Bytes of the messages being worked on in the threads now, and the ends of message waiting for room. */
  private workBytes = 0;
  private readonly waitingForRoom: { bytes: number; admit: () => void }[] = [];
  private retiring = false;
  private retireTimer: NodeJS.Timeout | undefined;
  private retireAt = Infinity;
  /** Set once the threads are being closed: nothing is dispatched any more. */
  private closing = false;
  private readonly closed: Promise<void>;
  private markClosed!: () => void;

  private constructor(private readonly options: ThreadPoolOptions) {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  /**
   * Starts the threads; rejects with the first one's reason when the plugins cannot be built, and at
   * once when `signal` aborts (the daemon is asked to stop meanwhile).
   */
  static async start(options: ThreadPoolOptions, signal?: AbortSignal): Promise<PipelineThreads> {
    signal?.throwIfAborted();
    const pool = new PipelineThreads(options);
    const threads = Array.from({ length: options.threads }, () => pool.spawn() as PipelineThread);
    const stopped = new Promise<never>((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason instanceof Error ? signal.reason : new Error('stopped while the pipeline threads were starting')), { once: true }));
    stopped.catch(() => undefined);
    try {
      const [first] = await Promise.race([Promise.all(threads.map((thread) => thread.ready)), stopped]);
      pool.facts = first as PipelineFacts;
    } catch (err) {
      await pool.stop();
      throw err;
    }
    return pool;
  }

  get checksRecipients(): boolean {
    return this.facts.checksRecipients;
  }

  get plugins(): readonly string[] {
    return this.facts.plugins;
  }

  /** Threads ready to take work now (0 while all are being replaced: the health endpoint says so). */
  get readyThreads(): number {
    return [...this.threads].filter((thread) => thread.state === 'ready').length;
  }

  open(envelope: Envelope): MessageJob {
    this.openJobs++;
    return new PoolJob(this, this.nextMessage++, envelope);
  }

  /**
   * Takes no new messages; resolves once the ones it has are over and its threads have closed their
   * plugins — or, at the latest, `deadlineMs` from now: what is still running then gets the fallback.
   */
  retire(deadlineMs?: number): Promise<void> {
    this.retiring = true;
    if (this.openJobs === 0) this.closeThreads();
    else if (deadlineMs !== undefined && !this.closing && Date.now() + deadlineMs < this.retireAt) {
      // Asked again (a stop after a reload), the nearer deadline holds.
      clearTimeout(this.retireTimer);
      this.retireAt = Date.now() + deadlineMs;
      this.retireTimer = setTimeout(() => this.closeThreads(), deadlineMs);
    }
    return this.closed;
  }

  private spawn(): PipelineThread | undefined {
    if (this.closing) return undefined;
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(ENTRY, { workerData: { ...this.options.data, port: port2 } satisfies ThreadStart, transferList: [port2], stdout: true, stderr: true });
    const thread = new PipelineThread(worker, port1);
    this.threads.add(thread);
    // What a plugin prints would break the daemon's one-JSON-object-per-line log: it becomes log lines.
    for (const [stream, output] of [['stdout', worker.stdout], ['stderr', worker.stderr]] as const) outputLines(output, (text) => this.options.log('plugin-output', { stream, text }));
    port1.on('message', (message: unknown) => {
      // Whatever a thread sends that is not what the daemon's threads send cannot be trusted, nor can the thread.
      try {
        this.heard(thread, message as FromThread);
      } catch (err) {
        this.stopThread(thread, `sent what a pipeline thread does not send (${errorText(err)})`);
      }
    });
    // The thread's parentPort is the plugins' to use; nothing from there is an answer.
    worker.once('message', () => this.options.log('plugin-error', { error: 'a plugin wrote to its thread\'s parentPort; the daemon does not read it', note: 'logged once per thread' }));
    worker.on('error', (err: unknown) => (thread.reason ??= `failed: ${errorText(err)}`));
    worker.on('exit', (code) => this.exited(thread, code));
    const late = setTimeout(() => {
      if (thread.state !== 'starting') return;
      const reason = `did not build its plugins within ${this.options.startTimeoutMs} ms (threadStartTimeoutMs)`;
      thread.settleStart(new Error(reason));
      this.stopThread(thread, reason);
    }, this.options.startTimeoutMs);
    void thread.ready.then(() => clearTimeout(late), () => clearTimeout(late));
    return thread;
  }

  private heard(thread: PipelineThread, message: FromThread): void {
    switch (message.type) {
      case 'ready':
        if (thread.state !== 'starting') return;
        thread.state = 'ready';
        thread.readySince = Date.now();
        thread.settleStart({ checksRecipients: message.checksRecipients, begins: message.begins, plugins: message.plugins });
        for (const wake of [...this.waiting]) wake();
        return;
      case 'start-failed':
        thread.settleStart(new Error(message.error));
        this.stopThread(thread, `could not start: ${message.error}`);
        return;
      case 'result': {
        const call = thread.calls.get(message.call);
        if (!call) return;
        let result: ReturnType<typeof checkedResult>;
        try {
          result = checkedResult(message, call.kind);
        } catch (err) {
          // Never a pass: the call gets the fallback, and the thread, which cannot be trusted, is replaced.
          thread.calls.delete(message.call);
          clearTimeout(call.graceTimer);
          this.fail(call, new FilterError(`pipeline thread: ${errorText(err)}`, { queueId: call.job.envelope.queueId }));
          throw err;
        }
        thread.calls.delete(message.call);
        clearTimeout(call.graceTimer);
        // Given up already (its time was up): the MTA had the fallback, so what its work logged does not count.
        if (call.settled) return;
        call.settled = true;
        if (!result.ok) {
          call.reject(new FilterError(result.error.message, result.error.fields));
          return;
        }
        if (call.kind === 'run') call.job.records = result.records;
        else for (const record of result.records) this.options.messageLog(record);
        call.resolve(result.value);
        return;
      }
      case 'message-log':
        this.options.messageLog(message.fields);
        return;
      case 'log':
        this.options.log(message.event, message.fields);
        return;
      case 'fatal':
        this.stopThread(thread, `an error no plugin can be named for: ${message.error}`);
        return;
      case 'closed':
        void thread.worker.terminate();
        return;
    }
  }

  /** Terminates a thread; `culprit`: the message it is stopped for. */
  private stopThread(thread: PipelineThread, reason: string, culprit?: PoolJob): void {
    if (thread.state === 'gone') return;
    thread.reason ??= reason;
    thread.culprit ??= culprit;
    thread.state = 'closing';
    void thread.worker.terminate();
  }

  private exited(thread: PipelineThread, code: number): void {
    thread.state = 'gone';
    this.threads.delete(thread);
    const reason = thread.reason ?? `exited with code ${code}`;
    thread.settleStart(new Error(reason));
    thread.port.close();
    let retried = 0;
    let failed = 0;
    for (const job of thread.jobs) if (job.thread === thread) job.thread = undefined;
    thread.jobs.clear();
    for (const [, call] of thread.calls) {
      clearTimeout(call.graceTimer);
      if (call.settled) continue;
      const innocent = thread.culprit !== undefined && call.job !== thread.culprit;
      if (innocent && call.attempts < MAX_ATTEMPTS && !call.signal?.aborted && !this.closing) {
        retried++;
        this.dispatch(call);
      } else {
        failed++;
        this.fail(call, new FilterError(`pipeline thread ${reason}`, { queueId: call.job.envelope.queueId }));
      }
    }
    thread.calls.clear();
    if (this.closing) return;
    // At once after a thread that served a while; after a growing pause after one that did not start or soon died.
    const healthy = thread.readySince !== undefined && Date.now() - thread.readySince >= HEALTHY_AFTER_MS;
    this.restartDelayMs = healthy ? 0 : Math.min(Math.max(this.restartDelayMs * 2, RESTART_DELAYS_MS.first), RESTART_DELAYS_MS.most);
    this.options.log(thread.readySince === undefined ? 'thread-start-failed' : 'thread-restart', { reason, retried, failed, restartInMs: this.restartDelayMs });
    if (this.restartDelayMs === 0) void this.spawn();
    else setTimeout(() => void this.spawn(), this.restartDelayMs).unref();
  }

  /** The least busy ready thread, waiting for one if all are being replaced. */
  private async pick(signal: AbortSignal | undefined): Promise<PipelineThread> {
    for (;;) {
      if (this.closing) throw new FilterError('the pipeline threads are closed');
      signal?.throwIfAborted();
      let best: PipelineThread | undefined;
      for (const thread of this.threads) {
        if (thread.state !== 'ready') continue;
        if (!best || thread.calls.size < best.calls.size || (thread.calls.size === best.calls.size && thread.jobs.size < best.jobs.size)) best = thread;
      }
      if (best) return best;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.waiting.delete(wake);
          signal?.removeEventListener('abort', wake);
          resolve();
        };
        this.waiting.add(wake);
        signal?.addEventListener('abort', wake, { once: true });
      });
    }
  }

  /** The job's thread, binding it to one first (and starting its plugins' early work there, if it had begun). */
  bind(job: PoolJob, signal: AbortSignal | undefined): Promise<PipelineThread> {
    if (job.thread?.state === 'ready') return Promise.resolve(job.thread);
    // One binding at a time: an early `begin` and the end of message must not pick two threads. It is
    // the job's, so it waits as long as the job lasts; each caller stops waiting when its own time is up.
    job.binding ??= this.pick(undefined)
      .then((thread) => {
        if (job.closed) throw new FilterError('the message is over');
        job.thread?.jobs.delete(job);
        job.thread = thread;
        thread.jobs.add(job);
        // Bound anew after its thread was lost: its early work starts again there.
        if (job.begun) this.startEarlyWork(job, thread);
        return thread;
      })
      .finally(() => (job.binding = undefined));
    job.binding.catch(() => undefined);
    if (!signal) return job.binding;
    const binding = job.binding;
    return new Promise<PipelineThread>((resolve, reject) => {
      const giveUp = (): void => reject(signal.reason);
      if (signal.aborted) return giveUp();
      signal.addEventListener('abort', giveUp, { once: true });
      binding.then(resolve, reject).finally(() => signal.removeEventListener('abort', giveUp));
    });
  }

  /** The job's plugins' `begin`, in its thread; binds it first if need be. */
  begin(job: PoolJob): void {
    if (!this.facts.begins) return;
    if (job.thread?.state === 'ready') this.startEarlyWork(job, job.thread);
    else this.bind(job, undefined).catch(() => undefined);
  }

  private startEarlyWork(job: PoolJob, thread: PipelineThread): void {
    if (this.facts.begins) thread.port.postMessage({ type: 'begin', id: job.id, envelope: job.envelope } satisfies ToThread);
  }

  /** Sends a request for a job and waits for its answer; its time being up answers at once with the signal's reason. */
  call<T>(job: PoolJob, kind: Call['kind'], request: Call['request'], signal: AbortSignal | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => this.dispatch({ job, kind, request, signal, resolve: resolve as (value: unknown) => void, reject, settled: false, attempts: 0 }));
  }

  private fail(call: Call, err: Error): void {
    if (call.settled) return;
    call.settled = true;
    call.reject(err);
  }

  /** Hands a call to its job's thread. Never throws: whatever goes wrong fails that call (the fallback). */
  private dispatch(call: Call): void {
    this.bind(call.job, call.signal).then(
      (thread) => {
        // Its time ran out while it waited for a thread: no plugin is to start on it.
        if (call.signal?.aborted) return this.fail(call, call.signal.reason instanceof Error ? call.signal.reason : new Error('aborted'));
        const id = this.nextCall++;
        try {
          const { message, transfer } = call.request(id);
          call.attempts++;
          thread.calls.set(id, call);
          thread.port.postMessage(message, transfer);
          if (message.type === 'run') call.job.ran = true;
        } catch (err) {
          thread.calls.delete(id);
          this.fail(call, new FilterError(`could not hand the message to its pipeline thread: ${errorText(err)}`, { queueId: call.job.envelope.queueId }));
          return;
        }
        if (call.signal?.aborted) this.overran(thread, id, call);
        else call.signal?.addEventListener('abort', () => this.overran(thread, id, call), { once: true });
      },
      (err: unknown) => this.fail(call, err instanceof Error ? err : new Error(String(err))),
    );
  }

  /**
   * A call was given up: its time is up, or its MTA has gone. The caller has its answer (the fallback)
   * and the thread is asked to stop that work. Only when the time was up must the thread show it is
   * alive: one that does not answer within graceMs is blocked by a plugin, and is replaced.
   */
  private overran(thread: PipelineThread, id: number, call: Call): void {
    if (call.settled || thread.calls.get(id) !== call) return;
    const reason: unknown = call.signal?.reason;
    this.fail(call, reason instanceof Error ? reason : new Error('aborted'));
    thread.port.postMessage({ type: 'abort', call: id } satisfies ToThread);
    if (!(reason instanceof HookTimeout)) return;
    call.graceTimer = setTimeout(() => {
      if (thread.calls.get(id) !== call) return;
      this.stopThread(thread, `did not answer within ${this.options.graceMs} ms (threadGraceMs) after the time of message ${call.job.envelope.queueId ?? `#${call.job.id}`} was up: a plugin blocks it`, call.job);
    }, this.options.graceMs);
  }

  /** A job is over: what its thread holds of it goes, and its records are logged if its answer went out. */
  released(job: PoolJob, answered: boolean): void {
    if (answered) for (const record of job.records) this.options.messageLog(record);
    job.records = [];
    if (job.thread && job.thread.state !== 'gone') {
      job.thread.jobs.delete(job);
      // A thread forgets a message once its end has run; only one that ended otherwise needs a word.
      if (!job.ran) job.thread.port.postMessage({ type: 'end', id: job.id } satisfies ToThread);
    }
    job.thread = undefined;
    this.openJobs--;
    if (this.retiring && this.openJobs === 0) this.closeThreads();
  }

  /** Asks every thread to close its plugins, and stops those that take too long. */
  private closeThreads(): void {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.retireTimer);
    for (const wake of [...this.waiting]) wake();
    const threads = [...this.threads];
    void Promise.all(
      threads.map(
        (thread) =>
          new Promise<void>((resolve) => {
            if (thread.state === 'gone') return resolve();
            thread.worker.once('exit', () => resolve());
            const timer = setTimeout(() => void thread.worker.terminate(), CLOSE_TIMEOUT_MS);
            thread.worker.once('exit', () => clearTimeout(timer));
            if (thread.state === 'ready') thread.port.postMessage({ type: 'close' } satisfies ToThread);
            else void thread.worker.terminate();
            thread.state = 'closing';
          }),
      ),
    ).then(() => this.markClosed());
  }

  /** Stops at once (a pool that did not start). */
  private async stop(): Promise<void> {
    this.retiring = true;
    this.closing = true;
    await Promise.all([...this.threads].map((thread) => thread.worker.terminate()));
    this.markClosed();
  }

  /**
   * Waits until a message of `bytes` may go to a thread (see workBudgetBytes), in the order they came;
   * resolves with the function that gives its room back.
   */
  async room(bytes: number, signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.waitingForRoom.length === 0 && this.fits(bytes)) this.workBytes += bytes;
    // Its bytes are counted when it is let in (admitWaiting).
    else {
      await new Promise<void>((resolve, reject) => {
        const entry = { bytes, admit: resolve };
        this.waitingForRoom.push(entry);
        signal.addEventListener(
          'abort',
          () => {
            const at = this.waitingForRoom.indexOf(entry);
            if (at < 0) return;
            this.waitingForRoom.splice(at, 1);
            reject(signal.reason);
            this.admitWaiting();
          },
          { once: true },
        );
      });
    }
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.workBytes -= bytes;
      this.admitWaiting();
    };
  }

  private fits(bytes: number): boolean {
    return this.workBytes === 0 || this.workBytes + bytes <= this.options.workBudgetBytes;
  }

  private admitWaiting(): void {
    while (this.waitingForRoom.length > 0 && this.fits((this.waitingForRoom[0] as { bytes: number }).bytes)) {
      const next = this.waitingForRoom.shift() as { bytes: number; admit: () => void };
      // Counted now, before another is let in.
      this.workBytes += next.bytes;
      next.admit();
    }
  }

  /** Logs a message over the size limit (no thread needed). */
  logOversize(envelope: Envelope, size: number, action: OversizeAction): void {
    this.options.messageLog(oversizeRecord(envelope, size, action));
  }
}

/** One message's steps, all through the thread it is bound to. */
class PoolJob implements MessageJob {
  thread: PipelineThread | undefined;
  /** A binding in progress. */
  binding: Promise<PipelineThread> | undefined;
  begun = false;
  /** Its end of message was sent to its thread (which forgets the message once that is done). */
  ran = false;
  closed = false;
  /** The message records its end of message logged, for when its answer has gone out. */
  records: Record<string, unknown>[] = [];
  private answeredOut = false;

  constructor(
    private readonly pool: PipelineThreads,
    readonly id: number,
    readonly envelope: Envelope,
  ) {}

  begin(): void {
    this.begun = true;
    // Early work only where a plugin has some; otherwise the message is bound when it ends, to the least busy thread.
    this.pool.begin(this);
  }

  recipient(recipient: string, signal: AbortSignal | undefined): Promise<RecipientResult> {
    // No plugin of this configuration checks recipients (the connection was made under one that did).
    if (!this.pool.checksRecipients) return Promise.resolve(undefined);
    return this.pool.call<RecipientResult>(this, 'recipient', (call) => ({ message: { type: 'recipient', call, id: this.id, envelope: this.envelope, recipient }, transfer: [] }), signal);
  }

  async run({ header, body, recipientsChecked }: CollectedMessage, signal: AbortSignal): Promise<MessageOutcome> {
    // A disk that stalls while the last of a spilled body is written must not hold the message past its time.
    const complete = await Promise.race([body.complete(), new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }))]);
    const checkRecipients = !recipientsChecked && this.pool.checksRecipients;
    const giveBack = await this.pool.room(header.length + body.size, signal);
    try {
      return await this.pool.call<MessageOutcome>(
      this,
      'run',
      (call) => {
        if ('file' in complete) return { message: { type: 'run', call, id: this.id, envelope: this.envelope, checkRecipients, message: { header: new Uint8Array(header), file: complete.file } }, transfer: [] };
        const bytes = joinUnshared([header, ...complete.chunks]);
        return { message: { type: 'run', call, id: this.id, envelope: this.envelope, checkRecipients, message: { bytes: bytes.buffer as ArrayBuffer, headerLength: header.length } }, transfer: [bytes.buffer as ArrayBuffer] };
        },
        signal,
      );
    } finally {
      giveBack();
    }
  }

  answered(): void {
    this.answeredOut = true;
  }

  oversize(size: number, action: OversizeAction): void {
    this.pool.logOversize(this.envelope, size, action);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pool.released(this, this.answeredOut);
  }
}
