import { readPolicyFile, type PolicyInput } from '../defang/index.js';
import { defangTransform, messageFilter, startMilterServer } from '../milter/index.js';

const USAGE = 'usage: milterkit milter [--listen inet:PORT@HOST|inet6:PORT@HOST|unix:/path] [--policy FILE] [--socket-mode 660] [--socket-group GROUP] [--fallback tempfail|reject|accept]';
/** The embedded default: loopback only, the port commonly used for milters in examples. */
export const DEFAULT_LISTEN = 'inet:8890@127.0.0.1';

/** Structured logs: one JSON line per event, on stdout. */
function log(event: string, fields: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}

export async function milterCommand(args: string[], out: (line: string) => void): Promise<number> {
  const values = new Map<string, string>();
  for (let i = 0; i < args.length; i += 2) {
    const [key, value] = [args[i] as string, args[i + 1]];
    if (!key.startsWith('--') || value === undefined) {
      out(USAGE);
      return 2;
    }
    values.set(key, value);
  }
  const unknown = [...values.keys()].filter((k) => !['--listen', '--policy', '--socket-mode', '--socket-group', '--fallback'].includes(k));
  const fallback = values.get('--fallback') ?? 'tempfail';
  if (unknown.length > 0 || !['tempfail', 'reject', 'accept'].includes(fallback)) {
    out(USAGE);
    return 2;
  }
  const policyFile = values.get('--policy');
  const policy: PolicyInput = policyFile ? await readPolicyFile(policyFile) : {};
  const server = await startMilterServer({
    listen: values.get('--listen') ?? DEFAULT_LISTEN,
    filter: messageFilter(defangTransform(policy, (fields) => log('message', fields))),
    fallback: fallback as 'tempfail' | 'reject' | 'accept',
    socketMode: values.get('--socket-mode'),
    socketGroup: values.get('--socket-group'),
    log,
  });
  log('listening', { address: server.address, pid: process.pid });
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log('stopping', { signal, connections: server.connections });
      void server.close().then(resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  log('stopped', {});
  return 0;
}
