import { chmodSync, chownSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { execFileSync } from 'node:child_process';
import { FrameReader } from './codec.js';
import type { FilterFactory } from './filter.js';
import { MilterSession, type SessionOptions } from './session.js';

/** Where to listen, as libmilter spells it: inet:PORT@HOST, inet6:PORT@HOST, unix:/path (or local:/path). */
export type ListenSpec = { kind: 'tcp'; port: number; host: string } | { kind: 'unix'; path: string };

export function parseListenSpec(spec: string): ListenSpec {
  const m = /^(inet6?|unix|local):(.+)$/.exec(spec.trim());
  if (!m) throw new RangeError(`listen spec "${spec}": expected inet:PORT@HOST, inet6:PORT@HOST or unix:/path`);
  const [, kind, rest] = m as unknown as [string, string, string];
  if (kind === 'unix' || kind === 'local') return { kind: 'unix', path: rest };
  const [portText, host = kind === 'inet6' ? '::1' : '127.0.0.1'] = rest.split('@') as [string, string?];
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`listen spec "${spec}": bad port`);
  return { kind: 'tcp', port, host: host.replace(/^\[(.*)\]$/, '$1') };
}

export interface MilterServerOptions extends Partial<SessionOptions> {
  filter: FilterFactory;
  listen: string;
  /** Largest packet accepted from the MTA (Postfix sends headers up to 100 KB). Default 1 MiB. */
  maxPacketSize?: number;
  /** Unix socket permissions and group, so that the MTA's user can connect (e.g. '660', 'postfix'). */
  socketMode?: string;
  socketGroup?: string;
  /**
   * Whether this server owns the unix socket's path: removes a stale socket before listening and the
   * socket when closed. Default true; false for node:cluster workers, whose primary owns the path.
   */
  ownsSocketPath?: boolean;
  /** How long close() waits for messages in flight before cutting connections. Default 30 s. */
  shutdownGraceMs?: number;
  /**
   * A connection on which nothing has moved for this long is closed: an MTA that went away without a
   * word (a half-dead TCP peer) or never negotiated. 0: never. Default 7210 s, libmilter's.
   */
  idleTimeoutMs?: number;
  /** Connections at once; more are closed as they come (the MTA then applies its default action). Default 1000. */
  maxConnections?: number;
}

export interface MilterServer {
  /** The bound address: a TCP port, or the socket path. */
  readonly address: { port: number; host: string } | { path: string };
  /** Stops listening, lets messages in flight finish (within the grace period), then closes. */
  close(): Promise<void>;
  readonly connections: number;
}

const DEFAULTS: SessionOptions = {
  fallback: 'tempfail',
  hookTimeoutMs: 25_000,
  eomTimeoutMs: 250_000,
  log: (event, fields) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`),
};

function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = execFileSync('getent', ['group', group], { encoding: 'utf8' });
  return Number(line.split(':')[2]);
}

/**
 * The milter server: one session per MTA connection, commands handled in order (the MTA waits for each
 * reply), no-delay sockets (Nagle plus delayed ACK would stall every exchange by ~40 ms on loopback TCP).
 */
export async function startMilterServer(options: MilterServerOptions): Promise<MilterServer> {
  const spec = parseListenSpec(options.listen);
  const sessionOptions: SessionOptions = {
    fallback: options.fallback ?? DEFAULTS.fallback,
    hookTimeoutMs: options.hookTimeoutMs ?? DEFAULTS.hookTimeoutMs,
    eomTimeoutMs: options.eomTimeoutMs ?? DEFAULTS.eomTimeoutMs,
    progressIntervalMs: options.progressIntervalMs,
    log: options.log ?? DEFAULTS.log,
  };
  const maxPacketSize = options.maxPacketSize ?? 1024 * 1024;
  const sockets = new Set<Socket>();
  let closing = false;
  const idle = new Set<Socket>();

  const idleTimeoutMs = options.idleTimeoutMs ?? 7_210_000;
  const maxConnections = options.maxConnections ?? 1000;
  const server: Server = createServer((socket) => {
    // Counted here, not with server.maxConnections: under node:cluster a worker at that limit hands the
    // connection back to the primary, which passes it on to another worker, for ever when all are full.
    if (sockets.size >= maxConnections) {
      sessionOptions.log('connection-refused', { reason: `${maxConnections} connections already (maxConnections)` });
      socket.destroy();
      return;
    }
    sockets.add(socket);
    if (spec.kind === 'tcp') socket.setNoDelay(true);
    // Longer than any hook may take (the MTA's own timeouts come first); PROGRESS counts as activity.
    if (idleTimeoutMs > 0) socket.setTimeout(idleTimeoutMs, () => socket.destroy());
    const reader = new FrameReader(maxPacketSize);
    const session = new MilterSession(options.filter, sessionOptions, (frames) => {
      // Corked: the frames of one answer leave in one system call (each write would wake the MTA).
      socket.cork();
      for (const frame of frames) socket.write(frame);
      socket.uncork();
    });
    let queue = Promise.resolve();
    const fail = (err: unknown): void => {
      sessionOptions.log('protocol-error', { error: err instanceof Error ? err.message : String(err) });
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        fail(err);
        return;
      }
      for (const frame of frames) {
        queue = queue.then(async () => {
          idle.delete(socket);
          await session.handle(frame);
          if (frame.command === 0x51) socket.end();
          // Idle means between messages: only then may a shutdown end the connection.
          if (!session.busy) {
            idle.add(socket);
            if (closing) socket.end();
          }
        }).catch(fail);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      sockets.delete(socket);
      idle.delete(socket);
      session.disconnected();
      void queue.then(() => session.end());
    });
    idle.add(socket);
  });

  const ownsPath = spec.kind === 'unix' && options.ownsSocketPath !== false;
  if (ownsPath && existsSync(spec.path)) unlinkSync(spec.path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    if (spec.kind === 'unix') server.listen(spec.path, resolve);
    else server.listen(spec.port, spec.host, resolve);
  });
  if (spec.kind === 'unix') {
    if (options.socketGroup) chownSync(spec.path, process.getuid?.() ?? 0, groupId(options.socketGroup));
    if (options.socketMode) chmodSync(spec.path, parseInt(options.socketMode, 8));
  }
  const bound = server.address();
  const address = spec.kind === 'unix' ? { path: spec.path } : { port: typeof bound === 'object' && bound ? bound.port : spec.port, host: spec.host };

  return {
    address,
    get connections() {
      return sockets.size;
    },
    async close() {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Idle connections (between messages) go now; busy ones get the grace period to finish.
      for (const socket of idle) socket.end();
      const grace = options.shutdownGraceMs ?? 30_000;
      const deadline = Date.now() + grace;
      while (sockets.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      for (const socket of sockets) socket.destroy();
      await closed;
      if (ownsPath && existsSync(spec.path)) unlinkSync(spec.path);
    },
  };
}
