import { createServer, type Server, type Socket } from 'node:net';

/**
 * SMTP servers on 127.0.0.1 whose every reply is scripted, down to how it is split into TCP writes: the
 * byte-level cases (split greetings, silence, early close) that a real server cannot be made to do.
 */
export type Reply = string | null | { chunks: string[]; gapMs?: number } | { close: true } | { delayMs: number; reply: Reply };

export interface Script {
  /** The greeting (null: never greet). Default "220 mx.test ESMTP". */
  greeting?: Reply;
  /** The reply to each command line (undefined: the default, null: silence); default 250, and 221 for QUIT. */
  reply?: (line: string) => Reply | undefined;
  /** EHLO capabilities besides the first line. */
  capabilities?: string[];
}

export interface ScriptedServer {
  port: number;
  /** Commands received, per connection. */
  sessions: string[][];
  /** Most connections open at the same time. */
  maxConcurrent: number;
  /**
   * Resolves once every connection has closed: a verifier that skips the QUIT answer (as Postfix's client
   * does) may return before this server has read the QUIT.
   */
  ended(): Promise<void>;
  close(): Promise<void>;
}

async function send(socket: Socket, reply: Reply): Promise<void> {
  if (reply === null || socket.destroyed) return;
  if (typeof reply === 'string') {
    socket.write(reply.endsWith('\n') ? reply : `${reply}\r\n`);
    return;
  }
  if ('close' in reply) {
    socket.destroy();
    return;
  }
  if ('delayMs' in reply) {
    await new Promise((resolve) => setTimeout(resolve, reply.delayMs));
    await send(socket, reply.reply);
    return;
  }
  for (const chunk of reply.chunks) {
    if (socket.destroyed) return;
    socket.write(chunk);
    await new Promise((resolve) => setTimeout(resolve, reply.gapMs ?? 5));
  }
}

function defaultReply(line: string, capabilities: string[]): Reply {
  const verb = line.split(' ')[0]?.toUpperCase();
  if (verb === 'EHLO') return ['250-mx.test', ...capabilities.map((c) => `250-${c}`), '250 8BITMIME'].join('\r\n');
  if (verb === 'QUIT') return '221 2.0.0 bye';
  return '250 2.0.0 ok';
}

export async function scriptedServer(script: Script = {}, host = '127.0.0.1', port = 0): Promise<ScriptedServer> {
  const sessions: string[][] = [];
  const sockets = new Set<Socket>();
  let whenEnded: (() => void)[] = [];
  let open = 0;
  const state = { maxConcurrent: 0 };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    // A session counts as open from its connection to its QUIT (or its end, without one).
    open++;
    state.maxConcurrent = Math.max(state.maxConcurrent, open);
    let finished = false;
    const done = (): void => {
      if (!finished) open--;
      finished = true;
    };
    socket.on('close', () => {
      done();
      sockets.delete(socket);
      if (sockets.size > 0) return;
      for (const resolve of whenEnded) resolve();
      whenEnded = [];
    });
    socket.on('error', () => {});
    const commands: string[] = [];
    sessions.push(commands);
    let buffer = '';
    let queue = send(socket, script.greeting === undefined ? '220 mx.test ESMTP' : script.greeting);
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let eol = buffer.indexOf('\r\n'); eol >= 0; eol = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        commands.push(line);
        const scripted = script.reply?.(line);
        const reply = scripted === undefined ? defaultReply(line, script.capabilities ?? []) : scripted;
        if (line.toUpperCase() === 'QUIT') done();
        queue = queue.then(() => send(socket, reply));
        if (line.toUpperCase() === 'QUIT') queue = queue.then(() => void socket.end());
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    sessions,
    get maxConcurrent() {
      return state.maxConcurrent;
    },
    ended: () => (sockets.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => whenEnded.push(resolve))),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A resolver where every domain's MX hosts are given names that resolve to loopback addresses. */
export function fakeResolver(zones: Record<string, { mx?: { exchange: string; priority: number }[]; a?: Record<string, string[]>; error?: string }>) {
  const error = (code: string): Error => Object.assign(new Error(code), { code });
  const a = Object.assign({}, ...Object.values(zones).map((z) => z.a ?? {})) as Record<string, string[]>;
  return {
    lookups: 0,
    async resolveMx(domain: string) {
      this.lookups++;
      const zone = zones[domain];
      if (!zone) throw error('ENOTFOUND');
      if (zone.error) throw error(zone.error);
      if (!zone.mx) throw error('ENODATA');
      return zone.mx;
    },
    async resolve4(host: string) {
      const addresses = a[host];
      if (!addresses) throw error('ENODATA');
      return addresses;
    },
    async resolve6(): Promise<string[]> {
      throw error('ENODATA');
    },
  };
}
