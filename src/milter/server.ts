import { chmodSync, chownSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { execFileSync } from 'node:child_process';
import { FrameReader } from './codec.js';
import type { FilterFactory } from './filter.js';
import { Command } from './protocol.js';
import { MilterSession, SESSION_DEFAULTS, type SessionOptions } from './session.js';

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

/**
 * What a connection is served with. `MilterServer.update` changes it: the session options (fallback, time
 * limits) from the next message on every connection, the rest for connections made afterwards.
 */
export interface ConnectionSettings extends Partial<SessionOptions> {
  filter: FilterFactory;
  /** Largest packet accepted from the MTA (Postfix sends headers up to 100 KB). Default 1 MiB. */
  maxPacketSize?: number;
  /**
   * A connection on which nothing has moved for this long is closed: an MTA that went away without a
   * word (a half-dead TCP peer). 0: never. Default 7210 s, libmilter's.
   */
  idleTimeoutMs?: number;
  /** A connection that has not negotiated (sent OPTNEG) this long after it was made is closed. 0: never. Default 10 s. */
  negotiationTimeoutMs?: number;
  /** A packet that began to arrive and has not been completed after this long closes its connection. 0: never. Default 30 s. */
  frameTimeoutMs?: number;
  /**
   * Connections at once. A new one past it first closes the connection idle longest (between messages,
   * nothing in progress); only when none is idle is the new one closed (the MTA then applies its default
   * action). Default 1000.
   */
  maxConnections?: number;
}

export interface MilterServerOptions extends ConnectionSettings {
  listen: string;
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
}

/** The defaults of the server's own options, in one place. */
export const SERVER_DEFAULTS = {
  maxPacketSize: 1024 * 1024,
  idleTimeoutMs: 7_210_000,
  negotiationTimeoutMs: 10_000,
  frameTimeoutMs: 30_000,
  maxConnections: 1000,
  shutdownGraceMs: 30_000,
} as const;

export interface MilterServer {
  /** The bound address: a TCP port, or the socket path. */
  readonly address: { port: number; host: string } | { path: string };
  /** Stops listening, lets messages in flight finish (within the grace period), then closes. */
  close(): Promise<void>;
  /** New settings (a reloaded configuration): see ConnectionSettings for when each applies. */
  update(settings: ConnectionSettings): void;
  readonly connections: number;
}

const stderrLog: SessionOptions['log'] = (event, fields) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);

function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = execFileSync('getent', ['group', group], { encoding: 'utf8' });
  return Number(line.split(':')[2]);
}

/** Checks what cannot be checked by its type: a limit that cannot mean what it says is refused at once. */
function resolveSettings(settings: ConnectionSettings): Required<Omit<ConnectionSettings, keyof SessionOptions>> & { session: SessionOptions } {
  const resolved = {
    filter: settings.filter,
    maxPacketSize: settings.maxPacketSize ?? SERVER_DEFAULTS.maxPacketSize,
    idleTimeoutMs: settings.idleTimeoutMs ?? SERVER_DEFAULTS.idleTimeoutMs,
    negotiationTimeoutMs: settings.negotiationTimeoutMs ?? SERVER_DEFAULTS.negotiationTimeoutMs,
    frameTimeoutMs: settings.frameTimeoutMs ?? SERVER_DEFAULTS.frameTimeoutMs,
    maxConnections: settings.maxConnections ?? SERVER_DEFAULTS.maxConnections,
    session: {
      fallback: settings.fallback ?? SESSION_DEFAULTS.fallback,
      hookTimeoutMs: settings.hookTimeoutMs ?? SESSION_DEFAULTS.hookTimeoutMs,
      eomTimeoutMs: settings.eomTimeoutMs ?? SESSION_DEFAULTS.eomTimeoutMs,
      progressIntervalMs: settings.progressIntervalMs ?? SESSION_DEFAULTS.progressIntervalMs,
      maxMacroBytes: settings.maxMacroBytes ?? SESSION_DEFAULTS.maxMacroBytes,
      log: settings.log ?? stderrLog,
    },
  };
  const positive = ['maxPacketSize', 'maxConnections'] as const;
  for (const key of positive) if (!Number.isInteger(resolved[key]) || resolved[key] < 1) throw new RangeError(`milter server: ${key} must be a positive integer, got ${resolved[key]}`);
  // Node runs a timer of more than 2^31 - 1 ms after 1 ms.
  for (const key of ['idleTimeoutMs', 'negotiationTimeoutMs', 'frameTimeoutMs'] as const) {
    if (!Number.isInteger(resolved[key]) || resolved[key] < 0 || resolved[key] > 2 ** 31 - 1) throw new RangeError(`milter server: ${key} must be an integer from 0 to ${2 ** 31 - 1}, got ${resolved[key]}`);
  }
  for (const key of ['hookTimeoutMs', 'eomTimeoutMs'] as const) {
    if (!Number.isInteger(resolved.session[key]) || resolved.session[key] < 1 || resolved.session[key] > 2 ** 31 - 1) throw new RangeError(`milter server: ${key} must be an integer from 1 to ${2 ** 31 - 1}, got ${resolved.session[key]}`);
  }
  return resolved;
}

/**
 * What a frame waiting to be handled costs in memory besides its bytes (the frame, its closure and its
 * promise): counted, so that a peer sending tiny packets cannot queue millions of them.
 */
const QUEUED_FRAME_COST = 512;

/** One MTA connection's state, as the server sees it. */
interface Connection {
  socket: Socket;
  session: MilterSession;
  reader: FrameReader;
  /** When it last received anything: the idle one longest is closed first to make room. */
  lastActive: number;
  /** Frames received and not yet handled, and their bytes. */
  queued: number;
  queuedBytes: number;
  /** Reading stopped: the peer sends faster than its frames are handled. */
  paused: boolean;
  /** QUIT came: nothing after it is handled. */
  quit: boolean;
}

/**
 * The milter server: one session per MTA connection, commands handled in order (the MTA waits for each
 * reply), no-delay sockets (Nagle plus delayed ACK would stall every exchange by ~40 ms on loopback TCP).
 * A peer cannot hold a connection by saying nothing useful: it must negotiate within
 * `negotiationTimeoutMs`, finish each packet within `frameTimeoutMs`, and say something within
 * `idleTimeoutMs`; and idle connections make room for new ones.
 */
export async function startMilterServer(options: MilterServerOptions): Promise<MilterServer> {
  const spec = parseListenSpec(options.listen);
  let settings = resolveSettings(options);
  const connections = new Set<Connection>();
  let closing = false;

  // Between messages, nothing received waiting: a stop may end it (end() still sends what is queued).
  const isIdle = (c: Connection): boolean => !c.session.busy && c.queued === 0 && c.reader.buffered === 0;
  // To be closed to make room, also nothing of an answer still on its way out (a close would cut it).
  const isEvictable = (c: Connection): boolean => isIdle(c) && c.socket.writableLength === 0;
  /** Closes a connection for a reason of the server's own, with a log line that says which limit. */
  const closeFor = (c: Connection, log: SessionOptions['log'], reason: string, limit: string, facts: Record<string, unknown> = {}): void => {
    connections.delete(c);
    log('connection-closed', { reason, limit, ...facts });
    c.socket.destroy();
  };

  const server: Server = createServer((socket) => {
    // The settings when the connection was made are its settings, but for the session's (per message).
    const { filter, maxPacketSize, idleTimeoutMs, negotiationTimeoutMs, frameTimeoutMs, maxConnections } = settings;
    const log = settings.session.log;
    // Counted here, not with server.maxConnections: under node:cluster a worker at that limit hands the
    // connection back to the primary, which passes it on to another worker, for ever when all are full.
    if (connections.size >= maxConnections) {
      let oldest: Connection | undefined;
      for (const c of connections) if (isEvictable(c) && (!oldest || c.lastActive < oldest.lastActive)) oldest = c;
      if (!oldest) {
        log('connection-refused', { reason: `${maxConnections} connections already, none idle (maxConnections)` });
        socket.destroy();
        return;
      }
      // Between messages, but maybe a live SMTP session: its next message gets the MTA's default action.
      closeFor(oldest, log, `no message in progress for ${Date.now() - oldest.lastActive} ms: closed to make room for a new connection`, 'maxConnections', { client: oldest.session.macro('{client_addr}') });
    }
    if (spec.kind === 'tcp') socket.setNoDelay(true);
    const reader = new FrameReader(maxPacketSize);
    const session = new MilterSession(filter, () => settings.session, (frames) => {
      connection.lastActive = Date.now();
      // Corked: the frames of one answer leave in one system call (each write would wake the MTA).
      socket.cork();
      for (const frame of frames) socket.write(frame);
      socket.uncork();
    });
    const connection: Connection = { socket, session, reader, lastActive: Date.now(), queued: 0, queuedBytes: 0, paused: false, quit: false };
    // A peer that sends packet after packet without waiting for the answers (an MTA waits for most) is
    // read no further than this ahead: what it sends waits in its socket, not in the daemon's memory.
    const readAhead = Math.max(2 * maxPacketSize, 1024 * 1024);
    connections.add(connection);
    // Longer than any hook may take (the MTA's own timeouts come first); PROGRESS counts as activity.
    if (idleTimeoutMs > 0) socket.setTimeout(idleTimeoutMs, () => closeFor(connection, log, `nothing received or sent for ${idleTimeoutMs} ms`, 'idleTimeoutMs'));
    const negotiation = negotiationTimeoutMs > 0 ? setTimeout(() => closeFor(connection, log, `no negotiation within ${negotiationTimeoutMs} ms`, 'negotiationTimeoutMs'), negotiationTimeoutMs) : undefined;
    let frameTimer: NodeJS.Timeout | undefined;
    let queue = Promise.resolve();
    const fail = (err: unknown): void => {
      log('protocol-error', { error: err instanceof Error ? err.message : String(err) });
      connections.delete(connection);
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      connection.lastActive = Date.now();
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (err) {
        fail(err);
        return;
      }
      // A packet that has begun must be finished in time; each one completed starts the clock anew.
      if (frames.length > 0) {
        clearTimeout(frameTimer);
        frameTimer = undefined;
      }
      armFrameTimer();
      for (const frame of frames) {
        // Nothing after QUIT is read: the connection is over.
        if (connection.quit) break;
        if (frame.command === Command.QUIT) connection.quit = true;
        if (frame.command === Command.OPTNEG) clearTimeout(negotiation);
        const cost = frame.data.length + 5 + QUEUED_FRAME_COST;
        connection.queued++;
        connection.queuedBytes += cost;
        queue = queue.then(async () => {
          connection.queued--;
          connection.queuedBytes -= cost;
          // Caught up: read on (a packet begun while reading stopped gets its whole time again).
          if (connection.paused && connection.queuedBytes <= readAhead / 2) {
            connection.paused = false;
            socket.resume();
            armFrameTimer();
          }
          await session.handle(frame);
          // Its answers sent, the connection goes, whatever the peer sends after it.
          if (frame.command === Command.QUIT) socket.destroySoon();
          // Between messages a shutdown may end the connection.
          if (closing && isIdle(connection)) socket.end();
        }).catch(fail);
      }
      readNoFurther();
    });
    /** Reading stops while the peer is too far ahead (see readAhead). */
    function readNoFurther(): void {
      if (connection.paused || connection.queuedBytes <= readAhead) return;
      connection.paused = true;
      socket.pause();
      // The wait is the daemon's, not the peer's: no frame timeout meanwhile.
      clearTimeout(frameTimer);
      frameTimer = undefined;
    }
    /** A packet that has begun must be finished in time, unless the daemon is the one not reading. */
    function armFrameTimer(): void {
      if (reader.buffered === 0 || frameTimeoutMs === 0 || connection.paused) return;
      frameTimer ??= setTimeout(() => closeFor(connection, log, `a packet begun ${frameTimeoutMs} ms ago is still incomplete (${reader.buffered} bytes)`, 'frameTimeoutMs'), frameTimeoutMs);
    }
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(negotiation);
      clearTimeout(frameTimer);
      connections.delete(connection);
      session.disconnected();
      void queue.then(() => session.end());
    });
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
      return connections.size;
    },
    update(next) {
      settings = resolveSettings(next);
    },
    async close() {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Idle connections (between messages) go now; busy ones get the grace period to finish.
      for (const c of connections) if (isIdle(c)) c.socket.end();
      const deadline = Date.now() + (options.shutdownGraceMs ?? SERVER_DEFAULTS.shutdownGraceMs);
      while (connections.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      for (const c of connections) c.socket.destroy();
      await closed;
      if (ownsPath && existsSync(spec.path)) unlinkSync(spec.path);
    },
  };
}
