import cluster, { type Worker } from 'node:cluster';
import { existsSync, unlinkSync } from 'node:fs';
import type { MilterConfig } from './config.js';
import { startHealthEndpoint } from './health-endpoint.js';
import { parseListenSpec } from '../milter/server.js';
import { sumSnapshots, type StatsSnapshot } from './stats.js';
import { missingNodeFlags } from './node-flags.js';

export const STATS_REQUEST = 'milterkit:stats?';
export const STATS_REPLY = 'milterkit:stats';
/** A worker that dies is replaced after this pause (so a worker that cannot start does not spin). */
const RESPAWN_DELAY_MS = 1000;
/** How long the health endpoint waits for the workers' figures. */
const STATS_TIMEOUT_MS = 1000;

type Log = (event: string, fields: Record<string, unknown>) => void;

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

/**
 * The primary of `--workers N`: it owns the unix socket's path, forks N workers that share the listening
 * socket (node:cluster hands them connections), replaces workers that die, serves the health endpoint
 * with the sum of their figures, and on SIGTERM stops them all gracefully (each finishes its messages).
 */
export async function runClusterPrimary(config: MilterConfig, log: Log): Promise<number> {
  const spec = parseListenSpec(config.listen);
  if (spec.kind === 'unix' && existsSync(spec.path)) unlinkSync(spec.path);
  // Heard from the start, before any worker exists, and kept: a second signal (systemd signals every
  // process of the unit) must not kill the primary while its workers finish.
  const stopSignal = new Promise<string>((resolve) => {
    process.on('SIGTERM', () => resolve('SIGTERM'));
    process.on('SIGINT', () => resolve('SIGINT'));
  });
  // The health endpoint first: if its address is taken, stop here, before any worker exists.
  let health: Awaited<ReturnType<typeof startHealthEndpoint>> | undefined;
  try {
    health = config.health ? await startHealthEndpoint(config.health, clusterStats) : undefined;
  } catch (err) {
    process.stderr.write(`milterkit milter: health endpoint: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  let stopping = false;
  // Workers get the daemon's V8 flags even when the primary was started without them.
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...missingNodeFlags()] });
  const fork = (): void => {
    cluster.fork();
  };
  let startFailed: () => void = () => {};
  const failedStart = new Promise<string>((resolve) => (startFailed = () => resolve('worker-start-failed')));
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    log('worker-exit', { worker: worker.id, code, signal });
    // Exit code 2: the worker could not start (its reason is on stderr); another would fail the same way.
    if (code === 2) startFailed();
    else setTimeout(() => stopping || fork(), RESPAWN_DELAY_MS);
  });
  for (let i = 0; i < config.workers; i++) fork();
  log('cluster', { workers: config.workers, pid: process.pid, health: health?.address() });

  const signal = await Promise.race([failedStart, stopSignal]);
  stopping = true;
  log('stopping', { signal, workers: Object.keys(cluster.workers ?? {}).length });
  const exits = Object.values(cluster.workers ?? {}).map((worker) => new Promise((resolve) => {
    worker?.once('exit', resolve);
    worker?.process.kill('SIGTERM');
  }));
  await Promise.all(exits);
  await new Promise((resolve) => (health ? health.close(resolve) : resolve(undefined)));
  if (spec.kind === 'unix' && existsSync(spec.path)) unlinkSync(spec.path);
  log('stopped', {});
  return signal === 'worker-start-failed' ? 2 : 0;
}
