import cluster from 'node:cluster';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { DEFAULT_CONFIG, buildPipeline, checkConfig, readConfigFile, validateConfig, type MilterConfig } from './config.js';
import { startHealthEndpoint } from './health-endpoint.js';
import { messageFilter } from '../milter/message-adapter.js';
import { pipeline, type MessageVerdict, type MilterPlugin } from './pipeline.js';
import { startMilterServer, type MilterServer } from '../milter/server.js';
import { MilterStats, type StatsSnapshot } from './stats.js';
import { runClusterPrimary, STATS_REPLY, STATS_REQUEST } from './cluster.js';
import { missingNodeFlags } from './node-flags.js';

const USAGE = 'usage: milterkit milter [--config FILE] [--listen inet:PORT@HOST|inet6:PORT@HOST|unix:/path] [--policy FILE] [--socket-mode 660] [--socket-group GROUP] [--fallback tempfail|reject|accept] [--workers N] [--health HOST:PORT]';
/** The embedded default: loopback only, the port commonly used for milters in examples. */
export const DEFAULT_LISTEN = DEFAULT_CONFIG.listen;

/** Flags that set a config key of the same meaning. */
const FLAGS: Readonly<Record<string, keyof MilterConfig>> = {
  '--listen': 'listen',
  '--socket-mode': 'socketMode',
  '--socket-group': 'socketGroup',
  '--fallback': 'fallback',
  '--workers': 'workers',
  '--health': 'health',
};

/** Structured logs: one JSON line per event, on stdout; a cluster worker's lines say which worker. */
function log(event: string, fields: Record<string, unknown>): void {
  const worker = cluster.isWorker ? { worker: cluster.worker?.id } : {};
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...worker, ...fields })}\n`);
}

/** The effective config: embedded defaults, then the config file, then flags. */
async function resolveConfig(args: string[]): Promise<{ config: MilterConfig; baseDirectory: string } | undefined> {
  const flags: Record<string, unknown> = {};
  let configFile: string | undefined;
  let policyFile: string | undefined;
  for (let i = 0; i < args.length; i += 2) {
    const [key, value] = [args[i] as string, args[i + 1]];
    if (value === undefined) return undefined;
    if (key === '--config') configFile = value;
    else if (key === '--policy') policyFile = value;
    else if (FLAGS[key] === 'workers') flags.workers = Number(value);
    else if (FLAGS[key]) flags[FLAGS[key]] = value;
    else return undefined;
  }
  const file = configFile ? await readConfigFile(configFile) : { config: {}, baseDirectory: process.cwd() };
  const config: MilterConfig = { ...DEFAULT_CONFIG, ...file.config, ...validateConfig(flags, 'command line') };
  checkConfig(config);
  // --policy gives every defang step of the pipeline that policy file (relative to the working directory).
  if (policyFile) config.pipeline = config.pipeline.map((entry) => (entry.plugin === 'defang' ? { ...entry, policy: resolve(policyFile) } : entry));
  return { config, baseDirectory: file.baseDirectory };
}

export async function milterCommand(args: string[], out: (line: string) => void): Promise<number> {
  let resolved;
  try {
    resolved = await resolveConfig(args);
  } catch (err) {
    process.stderr.write(`milterkit milter: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  if (!resolved) {
    out(USAGE);
    return 2;
  }
  const { config, baseDirectory } = resolved;
  if (config.workers > 1 && cluster.isPrimary) {
    // A config whose plugins cannot be built stops here, before any worker starts.
    const failure = await startupFailure(async () => {
      for (const plugin of await buildPipeline(config.pipeline, baseDirectory)) await plugin.close?.();
    });
    // The daemon's signal handlers are taken: once it has stopped, or could not start, it exits, so that
    // nothing left open (a plugin's connection) keeps it alive deaf to SIGTERM.
    process.exit(failure ?? (await runClusterPrimary(config, log)));
  }
  // For a worker, also: its channel to the primary would keep it alive (and a disconnect exits with 0);
  // the code tells the primary whether the worker could start.
  process.exit(await runWorker(config, baseDirectory));
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
async function runWorker(config: MilterConfig, baseDirectory: string): Promise<number> {
  let plugins: MilterPlugin[] = [];
  let server: MilterServer | undefined;
  const stats = new MilterStats();
  // Signals are heard from the start: the socket takes connections as soon as it listens, and a SIGTERM
  // before the handlers were installed would kill messages in flight instead of stopping gracefully.
  const stopSignal = stopSignals();
  let health: Server | undefined;
  const snapshot = (): StatsSnapshot => stats.snapshot(server?.connections ?? 0);
  const failure = await startupFailure(async () => {
    plugins = await buildPipeline(config.pipeline, baseDirectory, log);
    // Before the milter socket: a health address in use stops the start before any mail comes in.
    if (config.health && !cluster.isWorker) health = await startHealthEndpoint(config.health, async () => snapshot());
    server = await startServer(config, plugins, stats);
  });
  if (failure !== undefined || !server) return failure ?? 2;
  return serve(config, server, plugins, snapshot, health, stopSignal);
}

function startServer(config: MilterConfig, plugins: MilterPlugin[], stats: MilterStats): Promise<MilterServer> {
  const transform = pipeline(plugins, (fields) => {
    // A refusal at RCPT is not a message (there is none yet): its own event, as Postfix's NOQUEUE lines.
    if (fields.stage === 'rcpt') {
      stats.recordRefusedRecipient();
      log('recipient-refused', fields);
      return;
    }
    stats.recordMessage(fields.verdict as MessageVerdict);
    log('message', fields);
  });
  return startMilterServer({
    listen: config.listen,
    filter: messageFilter(transform, { memoryThresholdBytes: config.memoryThresholdBytes, temporaryDirectory: config.temporaryDirectory, maxMessageBytes: config.maxMessageBytes, oversizeAction: config.oversizeAction }),
    fallback: config.fallback,
    hookTimeoutMs: config.hookTimeoutMs,
    eomTimeoutMs: config.eomTimeoutMs,
    maxPacketSize: config.maxPacketSize,
    progressIntervalMs: config.progressIntervalMs,
    idleTimeoutMs: config.idleTimeoutMs,
    maxConnections: config.maxConnections,
    socketMode: config.socketMode,
    socketGroup: config.socketGroup,
    ownsSocketPath: !cluster.isWorker,
    log: (event, fields) => {
      stats.recordEvent(event);
      log(event, fields);
    },
  });
}

/**
 * Resolves with what asked the daemon to stop: SIGTERM, SIGINT, or (a worker) its primary gone. The
 * handlers stay installed: a second signal (the terminal's and the cluster primary's) must not kill a
 * worker mid-message.
 */
function stopSignals(): Promise<string> {
  return new Promise((resolve) => {
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
    if (cluster.isWorker) process.once('disconnect', () => resolve('primary-gone'));
  });
}

/** Serves until asked to stop, then stops gracefully. */
async function serve(config: MilterConfig, server: MilterServer, plugins: MilterPlugin[], snapshot: () => StatsSnapshot, health: Server | undefined, stopSignal: Promise<string>): Promise<number> {
  const statsTimer = config.statsIntervalSeconds > 0 ? setInterval(() => log('stats', { ...snapshot() }), config.statsIntervalSeconds * 1000).unref() : undefined;
  if (cluster.isWorker) process.on('message', (m: unknown) => m === STATS_REQUEST && process.send?.({ type: STATS_REPLY, snapshot: snapshot() }));
  const missing = missingNodeFlags();
  if (missing.length > 0) log('notice', { message: `node started without ${missing.join(' ')}: messages of 100 KB and more cost up to 1.5–1.8× the CPU (README, "Node flags")` });
  log('listening', { address: server.address, pid: process.pid, plugins: plugins.map((p) => p.name), health: health?.address() });
  const signal = await stopSignal;
  log('stopping', { signal, connections: server.connections });
  await server.close();
  clearInterval(statsTimer);
  await new Promise((resolve) => (health ? health.close(resolve) : resolve(undefined)));
  for (const plugin of plugins) await plugin.close?.();
  log('stopped', { ...snapshot() });
  return 0;
}
