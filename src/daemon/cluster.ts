import cluster, { type Worker } from 'node:cluster';
import { existsSync, unlinkSync } from 'node:fs';
import { parseListenSpec } from '../milter/server.js';
import { loadConfig, reloadedConfig, type DaemonArguments, type LoadedConfig } from './config.js';
import { startHealthEndpoint } from './health-endpoint.js';
import type { DaemonLog } from './log.js';
import { missingNodeFlags } from './node-flags.js';
import { sumSnapshots, type StatsSnapshot } from './stats.js';
import { sweepBodies } from './temporary-directory.js';
import { PipelineThreads } from './thread-pool.js';
import { errorText } from './error-text.js';

export const STATS_REQUEST = 'milterkit:stats?';
export const STATS_REPLY = 'milterkit:stats';
export const RELOAD_REQUEST = 'milterkit:reload';
/** The configuration a worker starts with: its primary's, the last one that loaded (never the file as it is now). */
export const WORKER_CONFIG_ENV = 'MILTERKIT_WORKER_CONFIG';
/** A worker that dies is replaced after this pause (so a worker that cannot start does not spin). */
const RESPAWN_DELAY_MS = 1000;
/** How long the health endpoint waits for the workers' figures. */
const STATS_TIMEOUT_MS = 1000;

/** Asks every worker for its figures and adds them up; a worker that does not answer in time is left out. */
async function clusterStats(): Promise<StatsSnapshot> {
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  const replies = workers.map(
    (worker) =>
      new Promise<StatsSnapshot | undefined>((resolve) => {
        const timer = setTimeout(() => done(undefined), STATS_TIMEOUT_MS);
        const onMessage = (m: { type?: string; snapshot?: StatsSnapshot }): void => {
          if (m?.type === STATS_REPLY) done(m.snapshot);
        };
        const done = (s: StatsSnapshot | undefined): void => {
          clearTimeout(timer);
          worker.off('message', onMessage);
          resolve(s);
        };
        worker.on('message', onMessage);
        worker.send(STATS_REQUEST);
      }),
  );
  return sumSnapshots((await Promise.all(replies)).filter((s): s is StatsSnapshot => s !== undefined));
}

/** Builds a configuration's plugins once, in a thread of its own, to know they load before any worker needs them. */
async function checkPlugins(loaded: LoadedConfig, log: DaemonLog, signal?: AbortSignal): Promise<void> {
  const check = await PipelineThreads.start({ threads: 1, graceMs: loaded.config.threadGraceMs, startTimeoutMs: loaded.config.threadStartTimeoutMs, workBudgetBytes: loaded.config.bodyMemoryBudgetBytes, data: { pipeline: loaded.config.pipeline, baseDirectory: loaded.baseDirectory }, log, messageLog: () => {} }, signal);
  await check.retire();
}

/**
 * The primary of `--workers N`: it owns the unix socket's path, forks N workers that share the listening
 * socket (node:cluster hands them connections), replaces workers that die, serves the health endpoint
 * with the sum of their figures, reloads on SIGHUP (a new configuration is loaded here, its plugins built
 * once to check them, and only then handed to the workers, so that a worker started later gets the same),
 * and on SIGTERM stops them all gracefully (each finishes its messages).
 */
export async function runClusterPrimary(args: DaemonArguments, first: LoadedConfig, log: DaemonLog): Promise<number> {
  let current = first;
  /** Counts the configurations that loaded; each worker is told of the one it was started with. */
  let generation = 1;
  const generationOf = new Map<number, number>();
  const spec = parseListenSpec(current.config.listen);
  if (spec.kind === 'unix' && existsSync(spec.path)) unlinkSync(spec.path);
  const liveWorkers = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  const tell = (worker: Worker): void => {
    generationOf.set(worker.id, generation);
    worker.send({ type: RELOAD_REQUEST, loaded: current });
  };

  /** Loads and checks a new configuration (plugins built once, in a thread), then hands it to every worker. */
  const reload = async (superseded: AbortSignal): Promise<void> => {
    let loaded: LoadedConfig;
    try {
      loaded = await loadConfig(args);
      await checkPlugins(loaded, log, AbortSignal.any([stopping.signal, superseded]));
    } catch (err) {
      log('reload-failed', { why: 'SIGHUP', error: errorText(err), kept: 'the configuration in force' });
      return;
    }
    const { config, restartNeeded } = reloadedConfig(current.config, loaded.config);
    current = { config, baseDirectory: loaded.baseDirectory };
    generation++;
    // Those still starting are told once they listen (a message sent before they hear it would be lost).
    const ready = liveWorkers().filter((worker) => generationOf.has(worker.id));
    for (const worker of ready) tell(worker);
    log('reload', { why: 'SIGHUP', workers: ready.length, ...(restartNeeded.length > 0 ? { restartNeeded, note: 'these keep their values until the daemon is restarted' } : {}) });
  };
  // Heard from the start, before any worker exists, and kept: a second signal (systemd signals every
  // process of the unit) must not kill the primary while its workers finish. Reloads one at a time, a
  // newer one replacing one still checking its plugins; a burst of signals makes one more, not one each.
  let reloading = Promise.resolve();
  let queued = false;
  let running: AbortController | undefined;
  // Aborted at a stop: a reload still building its plugins is given up.
  const stopping = new AbortController();
  const stopSignal = new Promise<string>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => (log('signal', { signal }), stopping.abort(new Error(`asked to stop (${signal})`)), resolve(signal)));
  });
  process.on('SIGHUP', () => {
    log('signal', { signal: 'SIGHUP' });
    running?.abort(new Error('a newer reload came'));
    if (queued) return;
    queued = true;
    reloading = reloading
      .then(() => {
        queued = false;
        running = new AbortController();
        return reload(running.signal);
      })
      .catch((err: unknown) => log('reload-failed', { why: 'SIGHUP', error: errorText(err), kept: 'the configuration in force' }));
  });
  // Plugins that do not build, or a health address in use, stop it here, before any worker exists.
  let health: Awaited<ReturnType<typeof startHealthEndpoint>> | undefined;
  try {
    await checkPlugins(current, log, stopping.signal);
  } catch (err) {
    if (stopping.signal.aborted) return 0;
    process.stderr.write(`milterkit milter: ${errorText(err)}\n`);
    return 2;
  }
  try {
    health = current.config.health ? await startHealthEndpoint(current.config.health, clusterStats) : undefined;
  } catch (err) {
    process.stderr.write(`milterkit milter: health endpoint: ${errorText(err)}\n`);
    return 2;
  }
  let stopped = false;
  // Workers get the daemon's V8 flags even when the primary was started without them.
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...missingNodeFlags()] });
  const forkedWith = new Map<number, number>();
  const fork = (): void => {
    forkedWith.set(cluster.fork({ [WORKER_CONFIG_ENV]: JSON.stringify(current) }).id, generation);
  };
  let listening = 0;
  cluster.on('listening', (worker) => {
    listening++;
    // Started before the last reload: it runs an older configuration.
    const started = forkedWith.get(worker.id) ?? generation;
    if (started < generation) tell(worker);
    else generationOf.set(worker.id, started);
  });
  let startFailed: () => void = () => {};
  const failedStart = new Promise<string>((resolve) => (startFailed = () => resolve('worker-start-failed')));
  cluster.on('exit', (worker, code, signal) => {
    // What a worker killed without a chance to clean up had spilled (its messages are the MTA's to retry).
    void sweepBodies(current.config.temporaryDirectory, (pid) => pid === worker.process.pid).catch(() => 0);
    generationOf.delete(worker.id);
    forkedWith.delete(worker.id);
    if (stopped) return;
    log('worker-exit', { worker: worker.id, code, signal });
    // Exit code 2 before the cluster was ever up: the worker could not start (its reason is on stderr),
    // and another would fail the same way. Later, a replacement is tried again after a pause.
    if (code === 2 && listening < current.config.workers) startFailed();
    else setTimeout(() => stopped || fork(), RESPAWN_DELAY_MS);
  });
  for (let i = 0; i < current.config.workers; i++) fork();
  log('cluster', { workers: current.config.workers, pid: process.pid, health: health?.address() });

  const signal = await Promise.race([failedStart, stopSignal]);
  stopped = true;
  await reloading;
  log('stopping', { signal, workers: Object.keys(cluster.workers ?? {}).length });
  const exits = Object.values(cluster.workers ?? {}).map(
    (worker) =>
      new Promise((resolve) => {
        worker?.once('exit', resolve);
        worker?.process.kill('SIGTERM');
      }),
  );
  await Promise.all(exits);
  await new Promise((resolve) => (health ? health.close(resolve) : resolve(undefined)));
  if (spec.kind === 'unix' && existsSync(spec.path)) unlinkSync(spec.path);
  log('stopped', {});
  return signal === 'worker-start-failed' ? 2 : 0;
}
