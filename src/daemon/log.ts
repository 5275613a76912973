import cluster from 'node:cluster';

export type DaemonLog = (event: string, fields: Record<string, unknown>) => void;

/** Structured logs: one JSON line per event, on stdout; a cluster worker's lines say which worker. */
export const log: DaemonLog = (event, fields) => {
  const worker = cluster.isWorker ? { worker: cluster.worker?.id } : {};
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...worker, ...fields })}\n`);
};
