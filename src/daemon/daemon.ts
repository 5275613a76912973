import cluster from 'node:cluster';
import { existsSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { MemoryBudget } from '../milter/body-buffer.js';
import { messageFilter } from '../milter/message-adapter.js';
import type { MessageWork } from '../milter/message-work.js';
import { parseListenSpec, startMilterServer, type ConnectionSettings, type MilterServer } from '../milter/server.js';
import { runClusterPrimary, RELOAD_REQUEST, STATS_REPLY, STATS_REQUEST, WORKER_CONFIG_ENV } from './cluster.js';
import { RESTART_KEYS, loadConfig, type DaemonArguments, type LoadedConfig, type MilterConfig } from './config.js';
import { startHealthEndpoint } from './health-endpoint.js';
import { log, type DaemonLog } from './log.js';
import { missingNodeFlags } from './node-flags.js';
import type { MessageVerdict } from './pipeline.js';
import { MilterStats, type StatsSnapshot } from './stats.js';
import { prepareTemporaryDirectory } from './temporary-directory.js';
import { PipelineThreads } from './thread-pool.js';

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
    process.stderr.write(`milterkit milter: ${err instanceof Error ? err.message : String(err)}\n`);
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
function requests(): () => Promise<Request> {
  const queued: Request[] = [];
  let wake: (() => void) | undefined;
  const hear = (request: Request, signal?: string): void => {
    if (signal) log('signal', { signal });
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
async function startupFailure(step: () => Promise<void>): Promise<number | undefined> {
  try {
    await step();
    return undefined;
  } catch (err) {
    process.stderr.write(`milterkit milter: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
}

/** One process serving mail: the whole daemon, or one worker of a cluster. */
async function runProcess(args: DaemonArguments, first: LoadedConfig): Promise<number> {
  const next = requests();
  const stats = new MilterStats();
  const budget = new MemoryBudget(first.config.bodyMemoryBudgetBytes);
  const record: DaemonLog = (event, fields) => {
    stats.recordEvent(event, fields);
    log(event, fields);
  };
  const startThreads = (config: MilterConfig, baseDirectory: string): Promise<PipelineThreads> =>
    PipelineThreads.start({
      threads: config.threads,
      graceMs: config.threadGraceMs,
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
    });
  let generation: Generation | undefined;
  let server: MilterServer | undefined;
  let health: Server | undefined;
  /** Pools of earlier configurations still finishing their messages. */
  const retiring = new Set<Promise<void>>();
  // Each message is bound to the configuration in force when it begins (its MAIL FROM).
  const work: MessageWork = {
    get checksRecipients() {
      return (generation as Generation).threads.checksRecipients;
    },
    open: (envelope) => (generation as Generation).threads.open(envelope),
  };
  const settings = (config: MilterConfig): ConnectionSettings => ({
    filter: messageFilter(work, { memoryThresholdBytes: config.memoryThresholdBytes, memoryBudget: budget, temporaryDirectory: config.temporaryDirectory, maxMessageBytes: config.maxMessageBytes, oversizeAction: config.oversizeAction }),
    fallback: config.fallback,
    hookTimeoutMs: config.hookTimeoutMs,
    eomTimeoutMs: config.eomTimeoutMs,
    maxPacketSize: config.maxPacketSize,
    progressIntervalMs: config.progressIntervalMs,
    idleTimeoutMs: config.idleTimeoutMs,
    negotiationTimeoutMs: config.negotiationTimeoutMs,
    frameTimeoutMs: config.frameTimeoutMs,
    maxConnections: config.maxConnections,
    log: record,
  });
  const snapshot = (): StatsSnapshot => stats.snapshot(server?.connections ?? 0, budget.bytesInUse);

  const failure = await startupFailure(async () => {
    const swept = await prepareTemporaryDirectory(first.config.temporaryDirectory);
    if (swept > 0) log('swept', { directory: first.config.temporaryDirectory, files: swept, why: 'bodies of a daemon that ended without cleaning up' });
    generation = { ...first, threads: await startThreads(first.config, first.baseDirectory) };
    // Before the milter socket: a health address in use stops the start before any mail comes in.
    if (first.config.health && !cluster.isWorker) health = await startHealthEndpoint(first.config.health, async () => snapshot());
    server = await startMilterServer({ ...settings(first.config), listen: first.config.listen, socketMode: first.config.socketMode, socketGroup: first.config.socketGroup, ownsSocketPath: !cluster.isWorker });
  });
  if (failure !== undefined || !server || !generation) {
    await generation?.threads.retire();
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
  const reload = async (why: string, given: LoadedConfig | undefined): Promise<void> => {
    const current = generation as Generation;
    let loaded: LoadedConfig;
    let threads: PipelineThreads;
    try {
      loaded = given ?? (await loadConfig(args));
      await prepareTemporaryDirectory(loaded.config.temporaryDirectory);
      threads = await startThreads(loaded.config, loaded.baseDirectory);
    } catch (err) {
      record('reload-failed', { why, error: err instanceof Error ? err.message : String(err), kept: 'the configuration in force' });
      return;
    }
    // What only a restart can change stays as it is, and the log says so.
    const restartNeeded = RESTART_KEYS.filter((key) => !isDeepStrictEqual(loaded.config[key], current.config[key]));
    const config = { ...loaded.config, ...Object.fromEntries(RESTART_KEYS.map((key) => [key, current.config[key]])) } as MilterConfig;
    generation = { config, baseDirectory: loaded.baseDirectory, threads };
    budget.limit = config.bodyMemoryBudgetBytes;
    server?.update(settings(config));
    const retired = current.threads.retire();
    retiring.add(retired);
    void retired.finally(() => retiring.delete(retired));
    record('reloaded', { why, plugins: threads.plugins, threads: config.threads, ...(restartNeeded.length > 0 ? { restartNeeded, note: 'these keep their values until the daemon is restarted' } : {}) });
  };

  let stop: string | undefined;
  while (stop === undefined) {
    const request = await next();
    if (request.kind === 'reload') await reload(request.why, request.loaded);
    else stop = request.why;
  }
  log('stopping', { signal: stop, connections: server.connections });
  await server.close();
  clearInterval(statsTimer);
  await Promise.all([generation.threads.retire(), ...retiring]);
  await new Promise((resolve) => (health ? health.close(resolve) : resolve(undefined)));
  log('stopped', { ...snapshot() });
  return 0;
}
