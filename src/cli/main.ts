#!/usr/bin/env -S node --max-semi-space-size=4 --initial-old-space-size=64
import { defangCommand } from './defang.js';
import { dsnCommand } from './dsn.js';
import { inspectCommand } from './inspect.js';
import { milterCommand } from './milter.js';
import { verifyCommand } from './verify.js';

const USAGE = `usage: milterkit <command> [options]

commands:
  milter [--config FILE] [--listen inet:PORT@HOST|unix:/path] [--policy FILE] [--socket-mode 660]
         [--socket-group G] [--fallback tempfail|reject|accept] [--workers N] [--threads N]
         [--health HOST:PORT]
                          the mail filter daemon: defangs every message (default inet:8890@127.0.0.1);
                          the config file adds callback verification and plugins of one's own;
                          SIGHUP reloads it, SIGTERM stops (docs/daemon.md)
  inspect FILE|- [--json] print the MIME tree of a message (- reads standard input):
                          path, type, size, file name, defects
  defang FILE|- [-o OUT|-] [--policy FILE] [--json] [--sender ADDR] [--recipient ADDR]...
                          remove dangerous attachments and active HTML; exit 0 clean,
                          3 changed, 4 quarantine, 5 reject
  dsn --original FILE --reporting-mta HOST --mail-from ADDR --recipient ADDR:ACTION[:STATUS[:DIAG]]...
      [--template NAME] [--envid X] [--ret FULL|HDRS] [--smtputf8] [--remote-mta HOST] [-o OUT]
                          write an RFC 3464 delivery status notification; exit 3 when none may be sent
  verify ADDRESS [--json] [--helo NAME] [--port N] [--timeout MS] [--catch-all] [--probe-sender ADDR]
         [--allow-loopback] [--allow-private]
                          ask the address's MX whether it exists (never sends mail); exit 0 valid,
                          3 invalid, 4 tempfail, 5 unverifiable`;

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  const out = (line: string): void => {
    process.stdout.write(line + '\n');
  };
  switch (command) {
    case 'inspect':
      return inspectCommand(args, out);
    case 'defang':
      return defangCommand(args, out);
    case 'dsn':
      return dsnCommand(args, out);
    case 'verify':
      return verifyCommand(args, out);
    case 'milter':
      return milterCommand(args, out);
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      out(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`milterkit: unknown command "${command}"\n${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`milterkit: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
