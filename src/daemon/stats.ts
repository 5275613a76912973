import type { MessageVerdict } from './pipeline.js';

/** What the daemon has done since it started: for the periodic `stats` log line and the health endpoint. */
export interface StatsSnapshot {
  uptimeSeconds: number;
  messages: number;
  verdicts: Partial<Record<MessageVerdict, number>>;
  /** Recipients refused at RCPT, before any message (e.g. an invalid sender, verified by callback). */
  recipientsRefused: number;
  /** Filter errors and timeouts, each answered with the fallback (a plugin's failure after its message was answered is a `plugin-error` line, not counted here). */
  filterErrors: number;
  protocolErrors: number;
  /** Connections closed as they came, past maxConnections with none idle. */
  connectionsRefused: number;
  /** Connections the daemon closed, by the limit that closed them (maxConnections: idle ones, to make room). */
  connectionsClosed: Partial<Record<string, number>>;
  connections: number;
  /** Pipeline threads terminated and replaced (a plugin that blocked one, a thread that died). */
  threadRestarts: number;
  /** Configurations loaded by SIGHUP, and those refused. */
  reloads: number;
  reloadsFailed: number;
  /** Body bytes held in memory now (the rest of the bodies in progress are in temporary files). */
  bodyBytesInMemory: number;
  /** Pipeline threads ready to take work now; 0 while all are being replaced (the health endpoint then answers 503). */
  pipelineThreads: number;
  rssBytes: number;
}

/** The log events that are counted, and where. */
const COUNTED = {
  'filter-error': 'filterErrors',
  'protocol-error': 'protocolErrors',
  'connection-refused': 'connectionsRefused',
  'thread-restart': 'threadRestarts',
  reloaded: 'reloads',
  'reload-failed': 'reloadsFailed',
} as const satisfies Record<string, keyof StatsSnapshot>;

type Counter = (typeof COUNTED)[keyof typeof COUNTED];

export class MilterStats {
  private readonly started = Date.now();
  private messages = 0;
  private readonly verdicts: Partial<Record<MessageVerdict, number>> = {};
  private recipientsRefused = 0;
  private readonly counters: Record<Counter, number> = { filterErrors: 0, protocolErrors: 0, connectionsRefused: 0, threadRestarts: 0, reloads: 0, reloadsFailed: 0 };
  private readonly connectionsClosed: Partial<Record<string, number>> = {};

  recordMessage(verdict: MessageVerdict): void {
    this.messages++;
    this.verdicts[verdict] = (this.verdicts[verdict] ?? 0) + 1;
  }

  recordRefusedRecipient(): void {
    this.recipientsRefused++;
  }

  /** Counts the events that are counted (errors, refusals, restarts, reloads); others are ignored. */
  recordEvent(event: string, fields: Record<string, unknown> = {}): void {
    if (event === 'connection-closed') {
      const limit = String(fields.limit);
      this.connectionsClosed[limit] = (this.connectionsClosed[limit] ?? 0) + 1;
    } else if (event in COUNTED) this.counters[COUNTED[event as keyof typeof COUNTED]]++;
  }

  /** The figures, with those of now that the caller knows. */
  snapshot(now: Pick<StatsSnapshot, 'connections' | 'bodyBytesInMemory' | 'pipelineThreads'>): StatsSnapshot {
    return {
      uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
      messages: this.messages,
      verdicts: { ...this.verdicts },
      recipientsRefused: this.recipientsRefused,
      ...this.counters,
      connectionsClosed: { ...this.connectionsClosed },
      ...now,
      rssBytes: process.memoryUsage.rss(),
    };
  }
}

/** Several workers' snapshots as one (the cluster's view): counts added, uptime the longest. */
export function sumSnapshots(snapshots: readonly StatsSnapshot[]): StatsSnapshot {
  const total: StatsSnapshot = { uptimeSeconds: 0, messages: 0, verdicts: {}, recipientsRefused: 0, filterErrors: 0, protocolErrors: 0, connectionsRefused: 0, connectionsClosed: {}, connections: 0, threadRestarts: 0, reloads: 0, reloadsFailed: 0, bodyBytesInMemory: 0, pipelineThreads: 0, rssBytes: 0 };
  const add = <K extends string>(into: Partial<Record<K, number>>, from: Partial<Record<K, number>>): void => {
    for (const [key, n] of Object.entries(from) as [K, number][]) into[key] = (into[key] ?? 0) + n;
  };
  for (const s of snapshots) {
    total.uptimeSeconds = Math.max(total.uptimeSeconds, s.uptimeSeconds);
    for (const key of ['messages', 'recipientsRefused', 'filterErrors', 'protocolErrors', 'connectionsRefused', 'connections', 'threadRestarts', 'reloads', 'reloadsFailed', 'bodyBytesInMemory', 'pipelineThreads', 'rssBytes'] as const) total[key] += s[key];
    add(total.verdicts, s.verdicts);
    add(total.connectionsClosed, s.connectionsClosed);
  }
  return total;
}
