import type { DaemonArguments } from '../daemon/config.js';
import { runDaemon } from '../daemon/daemon.js';

const USAGE = 'usage: milterkit milter [--config FILE] [--listen inet:PORT@HOST|inet6:PORT@HOST|unix:/path] [--policy FILE] [--socket-mode 660] [--socket-group GROUP] [--fallback tempfail|reject|accept] [--workers N] [--threads N] [--health HOST:PORT]';

/** Flags that set a config key of the same meaning, and whether their value is a number. */
const FLAGS: Readonly<Record<string, [key: string, numeric: boolean]>> = {
  '--listen': ['listen', false],
  '--socket-mode': ['socketMode', false],
  '--socket-group': ['socketGroup', false],
  '--fallback': ['fallback', false],
  '--workers': ['workers', true],
  '--threads': ['threads', true],
  '--health': ['health', false],
};

/** The command line, as the daemon takes it; undefined when it is not one. */
function parseArguments(args: string[]): DaemonArguments | undefined {
  const parsed: DaemonArguments = { flags: {} };
  for (let i = 0; i < args.length; i += 2) {
    const [key, value] = [args[i] as string, args[i + 1]];
    if (value === undefined) return undefined;
    if (key === '--config') parsed.configFile = value;
    else if (key === '--policy') parsed.policyFile = value;
    else if (FLAGS[key]) {
      const [name, numeric] = FLAGS[key];
      parsed.flags[name] = numeric ? Number(value) : value;
    } else return undefined;
  }
  return parsed;
}

/** `milterkit milter`: runs the daemon until it is stopped (the process exits with its code). */
export async function milterCommand(args: string[], out: (line: string) => void): Promise<number> {
  const parsed = parseArguments(args);
  if (!parsed) {
    out(USAGE);
    return 2;
  }
  return runDaemon(parsed);
}
