import { createInterface } from 'node:readline';
import { Worker } from 'node:worker_threads';
import { FilterError } from '../milter/filter.js';
import type { CollectedMessage, Envelope, MessageJob, MessageOutcome, MessageWork, OversizeAction, RecipientResult } from '../milter/message-work.js';
import { joinUnshared } from '../milter/transform-message.js';
import { oversizeRecord, type MessageLog } from './pipeline.js';
import type { FromThread, ThreadData, ToThread } from './thread-messages.js';

const ENTRY = new URL('./pipeline-thread.js', import.meta.url);
/** A thread that could not start (a module that no longer loads) is tried again after this pause. */
const RESTART_DELAY_MS = 1000;
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
  data: ThreadData;
  /** The daemon's log: the threads' events, and the plugins' own lines. */
  log: (event: string, fields: Record<string, unknown>) => void;
  /** The message records of the pipeline. */
  messageLog: MessageLog;
}

interface Call {
  job: PoolJob;
  /** Builds the request, again for each attempt (a message's bytes are handed over, not copied). */
  request: (call: number) => { message: ToThread; transfer: ArrayBuffer[] };
  signal: AbortSignal | undefined;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  /** Answered (or given up, its time being up): what comes later is dropped. */
  settled: boolean;
  attempts: number;
  graceTimer?: NodeJS.Timeout;
}

/** What the threads report once their plugins are built. */
interface Pipeline {
  checksRecipients: boolean;
  /** Whether a plugin has early work (`begin`), which binds a message to its thread at its first recipient. */
  begins: boolean;
  plugins: string[];
}

class PipelineThread {
  readonly calls = new Map<number, Call>();
  readonly jobs = new Set<PoolJob>();
  state: 'starting' | 'ready' | 'closing' | 'gone' = 'starting';
  /** Why it is being stopped, for the log. */
  reason: string | undefined;
  /** The message it was stopped for: the others it held are not to blame, and are tried again elsewhere. */
  culprit: PoolJob | undefined;
  readonly ready: Promise<Pipeline>;
  settleStart!: (pipeline: Pipeline | Error) => void;

  constructor(readonly worker: Worker) {
    this.ready = new Promise((resolve, reject) => (this.settleStart = (p) => (p instanceof Error ? reject(p) : resolve(p))));
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
  private pipeline: Pipeline = { checksRecipients: false, begins: false, plugins: [] };
  private nextMessage = 1;
  private nextCall = 1;
  private openJobs = 0;
  /** Waiting for a ready thread (all of them are being replaced). */
  private waiting: (() => void)[] = [];
  private retiring = false;
  /** Set once the threads are being closed: nothing is dispatched any more. */
  private closed: Promise<void> | undefined;
  private readonly allClosed: Promise<void>;
  private closedAll!: () => void;

  private constructor(private readonly options: ThreadPoolOptions) {
    this.allClosed = new Promise((resolve) => (this.closedAll = resolve));
  }

  /** Starts the threads; rejects with the first one's reason when the plugins cannot be built. */
  static async start(options: ThreadPoolOptions): Promise<PipelineThreads> {
    const pool = new PipelineThreads(options);
    const threads = Array.from({ length: options.threads }, () => pool.spawn());
    try {
      const [first] = await Promise.all(threads.map((thread) => thread.ready));
      pool.pipeline = first as Pipeline;
    } catch (err) {
      await pool.stop();
      throw err;
    }
    return pool;
  }

  get checksRecipients(): boolean {
    return this.pipeline.checksRecipients;
  }

  get plugins(): readonly string[] {
    return this.pipeline.plugins;
  }

  open(envelope: Envelope): MessageJob {
    this.openJobs++;
    return new PoolJob(this, this.nextMessage++, envelope);
  }

  /** Takes no new messages; resolves once the ones it has are over and its threads have closed their plugins. */
  retire(): Promise<void> {
    this.retiring = true;
    if (this.openJobs === 0) this.closeThreads();
    return this.allClosed;
  }

  private spawn(): PipelineThread {
    const worker = new Worker(ENTRY, { workerData: this.options.data, stdout: true, stderr: true });
    const thread = new PipelineThread(worker);
    this.threads.add(thread);
    // What a plugin prints would break the daemon's one-JSON-object-per-line log: it becomes log lines.
    for (const [stream, output] of [['stdout', worker.stdout], ['stderr', worker.stderr]] as const) {
      createInterface({ input: output }).on('line', (text) => this.options.log('plugin-output', { stream, text }));
    }
    worker.on('message', (message: FromThread) => this.heard(thread, message));
    worker.on('error', (err) => (thread.reason ??= `failed: ${err.message}`));
    worker.on('exit', (code) => this.exited(thread, code));
    return thread;
  }

  private heard(thread: PipelineThread, message: FromThread): void {
    switch (message.type) {
      case 'ready':
        thread.state = thread.state === 'starting' ? 'ready' : thread.state;
        thread.settleStart({ checksRecipients: message.checksRecipients, begins: message.begins, plugins: message.plugins });
        for (const wake of this.waiting.splice(0)) wake();
        return;
      case 'start-failed':
        thread.reason = 'could not start';
        thread.settleStart(new Error(message.error));
        void thread.worker.terminate();
        return;
      case 'result': {
        for (const record of message.records) this.options.messageLog(record);
        const call = thread.calls.get(message.call);
        if (!call) return;
        thread.calls.delete(message.call);
        clearTimeout(call.graceTimer);
        if (call.settled) return;
        call.settled = true;
        if (message.ok) call.resolve(message.value);
        else call.reject(new FilterError(message.error.message, message.error.fields));
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
    const inService = thread.state === 'ready' || (thread.state === 'closing' && thread.reason !== undefined);
    thread.state = 'gone';
    this.threads.delete(thread);
    thread.settleStart(new Error(thread.reason ?? `exited with code ${code}`));
    const reason = thread.reason ?? `exited with code ${code}`;
    let retried = 0;
    let failed = 0;
    for (const job of thread.jobs) if (job.thread === thread) job.thread = undefined;
    thread.jobs.clear();
    for (const [, call] of thread.calls) {
      clearTimeout(call.graceTimer);
      if (call.settled) continue;
      const innocent = thread.culprit !== undefined && call.job !== thread.culprit;
      if (innocent && call.attempts < MAX_ATTEMPTS && !call.signal?.aborted && !this.closed) {
        retried++;
        void this.dispatch(call);
      } else {
        failed++;
        call.settled = true;
        call.reject(new FilterError(`pipeline thread ${reason}`, { queueId: call.job.envelope.queueId }));
      }
    }
    thread.calls.clear();
    if (this.closed) return;
    if (!inService) {
      // A replacement that could not start: try again after a pause, not in a loop.
      this.options.log('thread-start-failed', { reason, retryInMs: RESTART_DELAY_MS });
      setTimeout(() => this.closed || this.spawn(), RESTART_DELAY_MS).unref();
      return;
    }
    this.options.log('thread-restart', { reason, retried, failed });
    this.spawn();
  }

  /** The least busy ready thread, waiting for one if all are being replaced. */
  private async pick(signal: AbortSignal | undefined): Promise<PipelineThread> {
    for (;;) {
      if (this.closed) throw new FilterError('the pipeline threads are closed');
      signal?.throwIfAborted();
      let best: PipelineThread | undefined;
      for (const thread of this.threads) {
        if (thread.state !== 'ready') continue;
        if (!best || thread.calls.size < best.calls.size || (thread.calls.size === best.calls.size && thread.jobs.size < best.jobs.size)) best = thread;
      }
      if (best) return best;
      await new Promise<void>((resolve) => {
        this.waiting.push(resolve);
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }

  /** The job's thread, binding it to one first (and starting its plugins' early work there, if it had begun). */
  async bind(job: PoolJob, signal: AbortSignal | undefined): Promise<PipelineThread> {
    if (job.thread?.state === 'ready') return job.thread;
    const thread = await this.pick(signal);
    job.thread?.jobs.delete(job);
    job.thread = thread;
    thread.jobs.add(job);
    // Bound anew after its thread was lost: its early work starts again there.
    if (job.begun) this.startEarlyWork(job, thread);
    return thread;
  }

  /** The job's plugins' `begin`, in its thread; binds it first if need be. */
  begin(job: PoolJob): void {
    if (!this.pipeline.begins) return;
    if (job.thread?.state === 'ready') this.startEarlyWork(job, job.thread);
    else void this.bind(job, undefined).catch(() => undefined);
  }

  private startEarlyWork(job: PoolJob, thread: PipelineThread): void {
    if (this.pipeline.begins) thread.worker.postMessage({ type: 'begin', id: job.id, envelope: job.envelope } satisfies ToThread);
  }

  /** Sends a request for a job and waits for its answer; its time being up answers at once with the signal's reason. */
  call<T>(job: PoolJob, request: Call['request'], signal: AbortSignal | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call: Call = { job, request, signal, resolve: resolve as (value: unknown) => void, reject, settled: false, attempts: 0 };
      void this.dispatch(call);
    });
  }

  private async dispatch(call: Call): Promise<void> {
    let thread: PipelineThread;
    try {
      thread = await this.bind(call.job, call.signal);
    } catch (err) {
      call.settled = true;
      call.reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    const id = this.nextCall++;
    call.attempts++;
    thread.calls.set(id, call);
    const { message, transfer } = call.request(id);
    thread.worker.postMessage(message, transfer);
    if (message.type === 'run') call.job.ran = true;
    if (call.signal?.aborted) this.overran(thread, id, call);
    else call.signal?.addEventListener('abort', () => this.overran(thread, id, call), { once: true });
  }

  /** The time of a call is up: the caller has its answer (the fallback); the thread must show it is alive. */
  private overran(thread: PipelineThread, id: number, call: Call): void {
    if (call.settled || thread.calls.get(id) !== call) return;
    call.settled = true;
    call.reject(call.signal?.reason instanceof Error ? call.signal.reason : new Error('aborted'));
    thread.worker.postMessage({ type: 'abort', call: id } satisfies ToThread);
    call.graceTimer = setTimeout(() => {
      if (thread.calls.get(id) !== call) return;
      this.stopThread(thread, `did not answer within ${this.options.graceMs} ms (threadGraceMs) after the time of message ${call.job.envelope.queueId ?? `#${call.job.id}`} was up: a plugin blocks it`, call.job);
    }, this.options.graceMs);
  }

  /** A job is over. */
  released(job: PoolJob): void {
    if (job.thread && job.thread.state !== 'gone') {
      job.thread.jobs.delete(job);
      // A thread forgets a message once its end has run; only one that ended otherwise needs a word.
      if (!job.ran) job.thread.worker.postMessage({ type: 'end', id: job.id } satisfies ToThread);
    }
    job.thread = undefined;
    this.openJobs--;
    if (this.retiring && this.openJobs === 0) this.closeThreads();
  }

  /** Asks every thread to close its plugins, and stops those that take too long. */
  private closeThreads(): void {
    if (this.closed) return;
    const threads = [...this.threads];
    this.closed = Promise.all(
      threads.map(
        (thread) =>
          new Promise<void>((resolve) => {
            thread.worker.once('exit', () => resolve());
            if (thread.state === 'gone') return resolve();
            const timer = setTimeout(() => void thread.worker.terminate(), CLOSE_TIMEOUT_MS);
            thread.worker.once('exit', () => clearTimeout(timer));
            if (thread.state === 'ready') thread.worker.postMessage({ type: 'close' } satisfies ToThread);
            else void thread.worker.terminate();
            thread.state = 'closing';
          }),
      ),
    ).then(() => this.closedAll());
    for (const wake of this.waiting.splice(0)) wake();
  }

  /** Stops at once (a pool that did not start). */
  private async stop(): Promise<void> {
    this.retiring = true;
    this.closed ??= this.allClosed;
    await Promise.all([...this.threads].map((thread) => thread.worker.terminate()));
    this.closedAll();
  }

  /** Where oversize records go (no thread needed). */
  logOversize(envelope: Envelope, size: number, action: OversizeAction): void {
    this.options.messageLog(oversizeRecord(envelope, size, action));
  }
}

/** One message's steps, all through the thread it is bound to. */
class PoolJob implements MessageJob {
  thread: PipelineThread | undefined;
  begun = false;
  /** Its end of message was sent to its thread (which forgets the message once that is done). */
  ran = false;
  private closed = false;

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
    return this.pool.call<RecipientResult>(this, (call) => ({ message: { type: 'recipient', call, id: this.id, envelope: this.envelope, recipient }, transfer: [] }), signal);
  }

  async run({ header, body }: CollectedMessage, signal: AbortSignal): Promise<MessageOutcome> {
    const complete = await body.complete();
    return this.pool.call<MessageOutcome>(
      this,
      (call) => {
        if ('file' in complete) return { message: { type: 'run', call, id: this.id, envelope: this.envelope, message: { header: new Uint8Array(header), file: complete.file } }, transfer: [] };
        const bytes = joinUnshared([header, ...complete.chunks]);
        return { message: { type: 'run', call, id: this.id, envelope: this.envelope, message: { bytes: bytes.buffer as ArrayBuffer, headerLength: header.length } }, transfer: [bytes.buffer as ArrayBuffer] };
      },
      signal,
    );
  }

  oversize(size: number, action: OversizeAction): void {
    this.pool.logOversize(this.envelope, size, action);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pool.released(this);
  }
}
