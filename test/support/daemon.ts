import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js';
import { startPostfix, type PostfixInstance } from './postfix.js';

export interface Daemon {
  /** Every JSON line it logged so far, parsed. */
  readonly lines: Record<string, unknown>[];
  /** Resolves with the first line matching, waiting up to `timeoutMs`. */
  waitFor(predicate: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
  /** The exit code, once it has exited (of itself, or by a signal the test sent). */
  readonly exited: Promise<number | null>;
  readonly process: ChildProcess;
}

/**
 * `milterkit milter` as users run it (the built CLI). Resolves once it (each of its `workers`) logged that
 * it is listening. Plugin modules written in TypeScript go through test/support/typescript-plugin.mjs.
 */
export interface DaemonLaunch {
  workers?: number;
  /** V8 flags for node: the daemon's own by default (as `npm start` passes them). */
  nodeFlags?: readonly string[];
  /** Run the built CLI as an executable, so its shebang line starts node. */
  viaShebang?: boolean;
}

export async function startDaemon(args: string[], options: DaemonLaunch = {}): Promise<Daemon> {
  const child = options.viaShebang
    ? spawn('dist/cli/main.js', ['milter', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [...(options.nodeFlags ?? DAEMON_NODE_FLAGS), 'dist/cli/main.js', 'milter', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let partial = '';
  const listeners = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => {
    const text = partial + d.toString();
    const complete = text.split('\n');
    partial = complete.pop() ?? '';
    for (const line of complete) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
    for (const listener of listeners) listener();
  });
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const waitFor = (predicate: (line: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const found = lines.find(predicate);
        if (!found) return;
        listeners.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`daemon: no such log line in ${timeoutMs} ms; stderr: ${stderr}; log: ${JSON.stringify(lines.slice(-5))}`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });

  const listening = (l: Record<string, unknown>): boolean => l.event === 'listening' && (options.workers ?? 1) <= lines.filter((x) => x.event === 'listening').length;
  await Promise.race([waitFor(listening), exited.then((code) => Promise.reject(new Error(`daemon exited (${code}): ${stderr}`)))]);
  return {
    lines,
    waitFor,
    process: child,
    exited,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

export interface DaemonBehindPostfix {
  daemon: Daemon;
  postfix: PostfixInstance;
  /** The daemon's unix socket. */
  socket: string;
  /** The config file it was started with (rewrite it, then SIGHUP, to reload). */
  configFile: string;
  /** Stops Postfix, then the daemon (resolving with its exit code), and removes the files. */
  stop(): Promise<number | null>;
}

/**
 * A real Postfix whose smtpd_milters is the daemon on a unix socket, the daemon run from a config file.
 * `config` gets the started Postfix (its port, for plugins that talk to it) and returns the config's
 * other keys; `listen` and `socketMode` are set here.
 */
export async function startDaemonBehindPostfix(
  users: string[],
  config: (postfix: PostfixInstance) => Record<string, unknown>,
  options: DaemonLaunch = {},
): Promise<DaemonBehindPostfix> {
  const dir = mkdtempSync(join(tmpdir(), 'milterkit-daemon-'));
  // Postfix's smtpd runs as the postfix user: it must be able to reach the socket.
  chmodSync(dir, 0o755);
  const socket = join(dir, 'milter.sock');
  const postfix = await startPostfix({ users, milter: `unix:${socket}` });
  const file = join(dir, 'milterkit.json');
  writeFileSync(file, JSON.stringify({ listen: `unix:${socket}`, socketMode: '666', ...config(postfix) }));
  const daemon = await startDaemon(['--config', file], options).catch(async (err: unknown) => {
    await postfix.stop();
    throw err;
  });
  return {
    daemon,
    postfix,
    socket,
    configFile: file,
    async stop() {
      await postfix.stop();
      const code = await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

export interface ConfiguredDaemon {
  daemon: Daemon;
  /** Its directory: the config file, `files`, and whatever the test puts there. */
  dir: string;
  file: string;
  /** Where it listens (TCP), and its health endpoint's port if it has one. */
  port: number;
  healthPort: number | undefined;
  /** Writes the config file anew (then SIGHUP to reload it). */
  rewrite(config: Record<string, unknown>): void;
  /** Stops it (its exit code) and removes its directory. */
  stop(): Promise<number | null>;
}

/**
 * The daemon from a config file in a directory of its own, `files` written beside it (plugin modules,
 * policies: relative paths in the config are relative to it). Listens on a free loopback port, with no
 * periodic stats line, unless the config says otherwise.
 */
type OfDirectory<T> = T | ((dir: string) => T);

export async function configuredDaemon(prefix: string, config: OfDirectory<Record<string, unknown>>, files: OfDirectory<Record<string, string>> = {}, launch: DaemonLaunch = {}): Promise<ConfiguredDaemon> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const file = join(dir, 'milterkit.json');
  const rewrite = (next: Record<string, unknown>): void => writeFileSync(file, JSON.stringify({ listen: 'inet:0@127.0.0.1', statsIntervalSeconds: 0, ...next }));
  for (const [name, text] of Object.entries(typeof files === 'function' ? files(dir) : files)) writeFileSync(join(dir, name), text);
  rewrite(typeof config === 'function' ? config(dir) : config);
  const daemon = await startDaemon(['--config', file], launch).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const listening = daemon.lines.find((l) => l.event === 'listening' || l.event === 'cluster') as { address?: { port: number }; health?: { port: number } };
  const address = (daemon.lines.find((l) => l.event === 'listening')?.address ?? {}) as { port?: number };
  return {
    daemon,
    dir,
    file,
    port: address.port ?? 0,
    healthPort: listening.health?.port,
    rewrite,
    async stop() {
      const code = await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}
