import cluster from 'node:cluster';
import { existsSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:http';
import { MemoryBudget } from '../milter/body-buffer.js';
import { messageFilter } from '../milter/message-adapter.js';
import type { MessageJob, MessageWork } from '../milter/message-work.js';
import { parseListenSpec, startMilterServer, type ConnectionSettings, type MilterServer } from '../milter/server.js';
import { runClusterPrimary, RELOAD_REQUEST, STATS_REPLY, STATS_REQUEST, WORKER_CONFIG_ENV } from './cluster.js';
import { loadConfig, reloadedConfig, type DaemonArguments, type LoadedConfig, type MilterConfig } from './config.js';
import { startHealthEndpoint } from './health-endpoint.js';
import { log, type DaemonLog } from './log.js';
import { missingNodeFlags } from './node-flags.js';
import type { MessageVerdict } from './pipeline.js';
import { MilterStats, type StatsSnapshot } from './stats.js';
import { prepareTemporaryDirectory, sweepOrphans } from './temporary-directory.js';
import { PipelineThreads } from './thread-pool.js';
import { errorText } from './error-text.js';

/**
 * Runs `milterkit milter` until it is stopped, then exits the process: 0 after a graceful stop, 2 when it
 * could not start (the reason on stderr), 70 after an error of the daemon's own (logged as `fatal`).
 * Every exit the process can see removes the unix socket it owns.
 */
export async function runDaemon(args: DaemonArguments): Promise<never> {
  let loaded: LoadedConfig;
  try {
    // A worker runs what its primary loaded last, not the file as it may be now.
    const fromPrimary = cluster.isWorker ? process.env[WORKER_CONFIG_ENV] : undefined;
    loaded = fromPrimary ? (JSON.parse(fromPrimary) as LoadedConfig) : await loadConfig(args);
  } catch (err) {
    process.stderr.write(`milterkit milter: ${errorText(err)}\n`);
    process.exit(2);
  }
  const { config } = loaded;
  const spec = parseListenSpec(config.listen);
  const ownsSocket = spec.kind === 'unix' && cluster.isPrimary;
  // No plugin code runs in this thread: an error that reaches here is the daemon's own, and it cannot
  // be trusted to go on. It says so and leaves no socket for the MTA to connect to in vain.
  const fatal = (err: unknown): void => {
    log('fatal', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    if (ownsSocket && existsSync(spec.path)) unlinkSync(spec.path);
    process.exit(70);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  // The daemon's signal handlers are taken: once it has stopped, or could not start, it exits, so that
  // nothing left open (a plugin's connection) keeps it alive deaf to SIGTERM.
  if (config.workers > 1 && cluster.isPrimary) process.exit(await runClusterPrimary(args, loaded, log));
  // For a worker, also: its channel to the primary would keep it alive (and a disconnect exits with 0);
  // the code tells the primary whether the worker could start.
  process.exit(await runProcess(args, loaded));
}

/** A signal, or the cluster primary's word: what the process is asked to do next. */
type Request = { kind: 'stop'; why: string } | { kind: 'reload'; why: string; loaded?: LoadedConfig };

/**
 * The daemon's requests, heard from the start: the socket takes connections as soon as it listens, and a
 * SIGTERM before the handlers were installed would kill messages in flight instead of stopping
 * gracefully. The handlers stay installed: a second signal (the terminal's and the cluster primary's)
 * must not kill a worker mid-message. Every signal handled is logged.
 */
function requests(stopping: AbortController): () => Promise<Request> {
  const queued: Request[] = [];
  let wake: (() => void) | undefined;
  const hear = (request: Request, signal?: string): void => {
    if (signal) log('signal', { signal });
    // At once, whatever the daemon is doing: threads still starting are given up.
    if (request.kind === 'stop') stopping.abort(new Error(`asked to stop (${request.why})`));
    queued.push(request);
    wake?.();
  };
  process.on('SIGTERM', () => hear({ kind: 'stop', why: 'SIGTERM' }, 'SIGTERM'));
  process.on('SIGINT', () => hear({ kind: 'stop', why: 'SIGINT' }, 'SIGINT'));
  if (cluster.isWorker) {
    // A cluster reloads through its primary, which loads and checks the configuration once for all.
    process.on('SIGHUP', () => log('signal', { signal: 'SIGHUP', note: 'ignored by a worker: send it to the primary' }));
    process.once('disconnect', () => hear({ kind: 'stop', why: 'primary-gone' }));
    process.on('message', (m: { type?: string; loaded?: LoadedConfig }) => m?.type === RELOAD_REQUEST && hear({ kind: 'reload', why: 'primary', loaded: m.loaded }));
  } else process.on('SIGHUP', () => hear({ kind: 'reload', why: 'SIGHUP' }, 'SIGHUP'));
  return async () => {
    while (queued.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
    return queued.shift() as Request;
  };
}

/** One configuration in force: its settings and the threads that run its pipeline. */
interface Generation {
  config: MilterConfig;
  baseDirectory: string;
  threads: PipelineThreads;
}

/** Runs a start-up step; on failure says why on stderr and gives exit code 2. */
async function startupFailure(step: () => Promise<void>, stopping: AbortSignal): Promise<number | undefined> {
  try {
    await step();
    return undefined;
  } catch (err) {
    // Asked to stop while starting: that is a stop, not a failure to report.
    if (stopping.aborted) return 0;
    process.stderr.write(`milterkit milter: ${errorText(err)}\n`);
    return 2;
  }
}

/** An old configuration's threads are stopped at the latest this long after a reload; a message still on them gets the fallback. */
const RETIRE_DEADLINE_MS = 10 * 60_000;
/** At a stop, once the connections are closed, what is still open of a message is given up after this. */
const STOP_DEADLINE_MS = 5000;

/**
 * The pipeline of the configuration in force, taken by each message at its first step that involves
 * its plugins (its first recipient, or its end): from then on that message keeps it to its end, across
 * any reload, so that its plugins' early and late work meet in one configuration.
 */
function workInForce(threads: () => PipelineThreads): MessageWork {
  return {
    get checksRecipients() {
      return threads().checksRecipients;
    },
    open(envelope): MessageJob {
      let job: MessageJob | undefined;
      const started = (): MessageJob => (job ??= threads().open(envelope));
      return {
        begin: () => started().begin(),
        recipient: (recipient, signal) => started().recipient(recipient, signal),
        run: (message, signal) => started().run(message, signal),
        answered: () => job?.answered(),
        oversize: (size, action) => started().oversize(size, action),
        close: () => job?.close(),
      };
    },
  };
}

/** One process serving mail: the whole daemon, or one worker of a cluster. */
async function runProcess(args: DaemonArguments, first: LoadedConfig): Promise<number> {
  // Aborted as soon as the daemon is asked to stop: threads still starting (at start, in a reload) are given up.
  const stopping = new AbortController();
  const next = requests(stopping);
  const stats = new MilterStats();
  const budget = new MemoryBudget(first.config.bodyMemoryBudgetBytes);
  const record: DaemonLog = (event, fields) => {
    stats.recordEvent(event, fields);
    log(event, fields);
  };
  const startThreads = (config: MilterConfig, baseDirectory: string, signal: AbortSignal = stopping.signal): Promise<PipelineThreads> =>
    PipelineThreads.start(
      {
        threads: config.threads,
        graceMs: config.threadGraceMs,
        startTimeoutMs: config.threadStartTimeoutMs,
        workBudgetBytes: config.bodyMemoryBudgetBytes,
        data: { pipeline: config.pipeline, baseDirectory },
      log: record,
        messageLog: (fields) => {
          // A refusal at RCPT is not a message (there is none yet): its own event, as Postfix's NOQUEUE lines.
          if (fields.stage === 'rcpt') {
            stats.recordRefusedRecipient();
            log('recipient-refused', fields);
            return;
          }
          stats.recordMessage(fields.verdict as MessageVerdict);
          log('message', fields);
        },
      },
      signal,
    );
  let generation: Generation | undefined;
  const inForce = (): Generation => generation as Generation;
  let server: MilterServer | undefined;
  let health: Server | undefined;
  /** Pools of earlier configurations still finishing their messages. */
  const retiring = new Set<PipelineThreads>();
  // One filter for the daemon's life: its limits are asked again for each message, its work is the configuration in force.
  const filter = messageFilter(workInForce(() => inForce().threads), () => {
    const { config } = inForce();
    return { memoryThresholdBytes: config.memoryThresholdBytes, memoryBudget: budget, temporaryDirectory: config.temporaryDirectory, maxMessageBytes: config.maxMessageBytes, oversizeAction: config.oversizeAction };
  });
  const settings = (config: MilterConfig): ConnectionSettings => ({
    filter,
    fallback: config.fallback,
    hookTimeoutMs: config.hookTimeoutMs,
    eomTimeoutMs: config.eomTimeoutMs,
    maxPacketSize: config.maxPacketSize,
    progressIntervalMs: config.progressIntervalMs,
    idleTimeoutMs: config.idleTimeoutMs,
    negotiationTimeoutMs: config.negotiationTimeoutMs,
    frameTimeoutMs: config.frameTimeoutMs,
    maxConnections: config.maxConnections,
    maxMacroBytes: config.maxMacroBytes,
    log: record,
  });
  const snapshot = (): StatsSnapshot => stats.snapshot({ connections: server?.connections ?? 0, bodyBytesInMemory: budget.bytesInUse, pipelineThreads: generation?.threads.readyThreads ?? 0 });

  const failure = await startupFailure(async () => {
    await prepareTemporaryDirectory(first.config.temporaryDirectory);
    const swept = await sweepOrphans(first.config.temporaryDirectory);
    if (swept > 0) log('swept', { directory: first.config.temporaryDirectory, files: swept, why: 'bodies of a daemon that ended without cleaning up' });
    generation = { ...first, threads: await startThreads(first.config, first.baseDirectory) };
    // Before the milter socket: a health address in use stops the start before any mail comes in.
    if (first.config.health && !cluster.isWorker) health = await startHealthEndpoint(first.config.health, async () => snapshot());
    server = await startMilterServer({ ...settings(first.config), listen: first.config.listen, socketMode: first.config.socketMode, socketGroup: first.config.socketGroup, ownsSocketPath: !cluster.isWorker });
  }, stopping.signal);
  if (failure !== undefined || !server || !generation) {
    await generation?.threads.retire();
    await server?.close();
    return failure ?? 2;
  }
  const statsTimer = first.config.statsIntervalSeconds > 0 ? setInterval(() => log('stats', { ...snapshot() }), first.config.statsIntervalSeconds * 1000).unref() : undefined;
  if (cluster.isWorker) process.on('message', (m: unknown) => m === STATS_REQUEST && process.send?.({ type: STATS_REPLY, snapshot: snapshot() }));
  const missing = missingNodeFlags();
  if (missing.length > 0) log('notice', { message: `node started without ${missing.join(' ')}: messages of 100 KB and more cost up to 1.5–1.8× the CPU (docs/daemon.md, "Node flags")` });
  log('listening', { address: server.address, pid: process.pid, plugins: generation.threads.plugins, threads: first.config.threads, health: health?.address() });

  /**
   * A new configuration: read, checked and its plugins built in new threads before anything changes.
   * Messages that begin afterwards use it; those in flight finish on the old one, whose threads then
   * close. One that does not load is refused with its reason, and the old one stays in force.
   */
  const reload = async (why: string, given: LoadedConfig | undefined, superseded: AbortSignal): Promise<void> => {
    const current = inForce();
    let loaded: LoadedConfig;
    let next: ConnectionSettings;
    let threads: PipelineThreads | undefined;
    try {
      loaded = given ?? (await loadConfig(args));
      await prepareTemporaryDirectory(loaded.config.temporaryDirectory);
      next = settings(reloadedConfig(current.config, loaded.config).config);
      threads = await startThreads(loaded.config, loaded.baseDirectory, AbortSignal.any([stopping.signal, superseded]));
      // Checked here, before anything changes: a setting the server refuses refuses the reload.
      server?.update(next);
    } catch (err) {
      await threads?.retire();
      record('reload-failed', { why, error: errorText(err), kept: 'the configuration in force' });
      return;
    }
    const { config, restartNeeded } = reloadedConfig(current.config, loaded.config);
    generation = { config, baseDirectory: loaded.baseDirectory, threads };
    budget.limit = config.bodyMemoryBudgetBytes;
    retiring.add(current.threads);
    void current.threads.retire(RETIRE_DEADLINE_MS).finally(() => retiring.delete(current.threads));
    record('reloaded', { why, plugins: threads.plugins, threads: config.threads, ...(restartNeeded.length > 0 ? { restartNeeded, note: 'these keep their values until the daemon is restarted' } : {}) });
  };

  // Requests are heard while a reload runs: a stop does not wait for it, and a newer reload replaces it
  // (a module that takes long to load must not hold back the configuration that fixes it); however many
  // signals come meanwhile, one more reload follows.
  let reloading: Promise<void> | undefined;
  let replaceReload: AbortController | undefined;
  let again: Extract<Request, { kind: 'reload' }> | undefined;
  const startReload = (request: Extract<Request, { kind: 'reload' }>): void => {
    if (reloading) {
      again = request;
      replaceReload?.abort(new Error('a newer reload came'));
      return;
    }
    replaceReload = new AbortController();
    reloading = reload(request.why, request.loaded, replaceReload.signal).finally(() => {
      reloading = undefined;
      const next = again;
      again = undefined;
      if (next && !stopping.signal.aborted) startReload(next);
    });
  };
  let stop: string | undefined;
  while (stop === undefined) {
    const request = await next();
    if (request.kind === 'reload') startReload(request);
    else stop = request.why;
  }
  await reloading;
  log('stopping', { signal: stop, connections: server.connections });
  await server.close();
  clearInterval(statsTimer);
  await Promise.all([generation.threads, ...retiring].map((threads) => threads.retire(STOP_DEADLINE_MS)));
  await new Promise((resolve) => (health ? health.close(resolve) : resolve(undefined)));
  log('stopped', { ...snapshot() });
  return 0;
}
