import cluster from 'node:cluster';

export type DaemonLog = (event: string, fields: Record<string, unknown>) => void;

/**
 * Structured logs: one JSON line per event, on stdout; a cluster worker's lines say which worker. The
 * line's time, event and worker come first and are never taken from the fields.
 */
export const log: DaemonLog = (event, fields) => {
  const line: Record<string, unknown> = { time: new Date().toISOString(), event, ...(cluster.isWorker ? { worker: cluster.worker?.id } : {}) };
  for (const [key, value] of Object.entries(fields)) if (!Object.hasOwn(line, key)) line[key] = value;
  process.stdout.write(`${JSON.stringify(line)}\n`);
};
