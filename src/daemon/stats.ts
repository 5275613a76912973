import type { MessageVerdict } from './pipeline.js';

/** What the daemon has done since it started: for the periodic `stats` log line and the health endpoint. */
export interface StatsSnapshot {
  uptimeSeconds: number;
  messages: number;
  verdicts: Partial<Record<MessageVerdict, number>>;
  /** Recipients refused at RCPT, before any message (e.g. an invalid sender, verified by callback). */
  recipientsRefused: number;
  /** Filter errors and timeouts (each answered with the fallback). */
  filterErrors: number;
  protocolErrors: number;
  /** Connections closed as they came, past maxConnections. */
  connectionsRefused: number;
  connections: number;
  rssBytes: number;
}

export class MilterStats {
  private readonly started = Date.now();
  private messages = 0;
  private readonly verdicts: Partial<Record<MessageVerdict, number>> = {};
  private recipientsRefused = 0;
  private filterErrors = 0;
  private protocolErrors = 0;
  private connectionsRefused = 0;

  recordMessage(verdict: MessageVerdict): void {
    this.messages++;
    this.verdicts[verdict] = (this.verdicts[verdict] ?? 0) + 1;
  }

  recordRefusedRecipient(): void {
    this.recipientsRefused++;
  }

  /** Counts the server's error events; other events are ignored. */
  recordEvent(event: string): void {
    if (event === 'filter-error') this.filterErrors++;
    else if (event === 'protocol-error') this.protocolErrors++;
    else if (event === 'connection-refused') this.connectionsRefused++;
  }

  snapshot(connections: number): StatsSnapshot {
    return {
      uptimeSeconds: Math.round((Date.now() - this.started) / 1000),
      messages: this.messages,
      verdicts: { ...this.verdicts },
      recipientsRefused: this.recipientsRefused,
      filterErrors: this.filterErrors,
      protocolErrors: this.protocolErrors,
      connectionsRefused: this.connectionsRefused,
      connections,
      rssBytes: process.memoryUsage.rss(),
    };
  }
}

/** Several workers' snapshots as one (the cluster's view): counts added, uptime the longest. */
export function sumSnapshots(snapshots: readonly StatsSnapshot[]): StatsSnapshot {
  const total: StatsSnapshot = { uptimeSeconds: 0, messages: 0, verdicts: {}, recipientsRefused: 0, filterErrors: 0, protocolErrors: 0, connectionsRefused: 0, connections: 0, rssBytes: 0 };
  for (const s of snapshots) {
    total.uptimeSeconds = Math.max(total.uptimeSeconds, s.uptimeSeconds);
    total.messages += s.messages;
    total.recipientsRefused += s.recipientsRefused;
    total.filterErrors += s.filterErrors;
    total.protocolErrors += s.protocolErrors;
    total.connectionsRefused += s.connectionsRefused;
    total.connections += s.connections;
    total.rssBytes += s.rssBytes;
    for (const [verdict, n] of Object.entries(s.verdicts) as [MessageVerdict, number][]) total.verdicts[verdict] = (total.verdicts[verdict] ?? 0) + n;
  }
  return total;
}
