import { Socket, connect as connectTcp } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';

/** One SMTP reply: its code and every line's text (multi-line replies joined by the caller as needed). */
export interface SmtpReply {
  code: number;
  lines: string[];
}

export function replyText(reply: SmtpReply): string {
  return reply.lines.map((line) => `${reply.code} ${line}`.trimEnd()).join(' / ');
}

export class SmtpTimeoutError extends Error {
  constructor(stage: string) {
    super(`timeout waiting for ${stage}`);
    this.name = 'SmtpTimeoutError';
  }
}

export class SmtpClosedError extends Error {
  constructor(stage: string) {
    super(`connection closed during ${stage}`);
    this.name = 'SmtpClosedError';
  }
}

const REPLY_LINE = /^([2-5]\d\d)([ -]?)(.*)$/;
/** A reply line longer than this is not SMTP: give up rather than buffer without end. */
const MAX_LINE = 4096;
const MAX_LINES = 100;
/** setTimeout's largest delay (about 24.8 days); a longer one would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A client SMTP session for probes: line-buffered replies (multi-line, split across TCP segments, one byte at
 * a time), a per-command timeout bounded by an overall deadline, STARTTLS, and a transcript of everything
 * said. Written here rather than with nodemailer's SMTPConnection because a probe must stop after RCPT:
 * that class goes to DATA as soon as one recipient is accepted.
 */
export class SmtpSession {
  readonly transcript: string[] = [];
  private socket: Socket | TLSSocket;
  private buffer = '';
  private pending: SmtpReply['lines'] = [];
  private replies: SmtpReply[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;
  private failure: Error | undefined;
  private readonly deadline: number;
  /** What the session is waiting for, named in a timeout error. */
  private stage = 'connect';
  /**
   * One timer for the overall deadline, for the whole session: per-read timers are only armed when the
   * command timeout ends before it (a timer per reply, each of a different length, is most of the cost of a
   * probe in node's timer lists).
   */
  private readonly deadlineTimer: NodeJS.Timeout;

  private constructor(socket: Socket, deadline: number) {
    this.socket = socket;
    this.deadline = deadline;
    this.deadlineTimer = setTimeout(() => {
      this.failure ??= new SmtpTimeoutError(this.stage);
      this.wake();
    }, Math.min(MAX_TIMER_MS, Math.max(0, deadline - Date.now())));
    this.listen(socket);
  }

  /** Connects within `timeoutMs` (and the deadline). */
  static async connect(host: string, port: number, timeoutMs: number, deadline: number): Promise<SmtpSession> {
    const socket = connectTcp({ host, port, noDelay: true });
    const session = new SmtpSession(socket, deadline);
    try {
      await session.within(timeoutMs, 'connect', new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      }));
    } catch (err) {
      session.close();
      throw err;
    }
    return session;
  }

  private listen(socket: Socket | TLSSocket): void {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => {
      this.failure ??= err;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      clearTimeout(this.deadlineTimer);
      this.wake();
    });
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    for (;;) {
      const eol = this.buffer.indexOf('\n');
      if (eol < 0) break;
      const line = this.buffer.slice(0, eol).replace(/\r$/, '');
      this.buffer = this.buffer.slice(eol + 1);
      this.transcript.push(`S: ${line}`);
      const m = REPLY_LINE.exec(line);
      if (!m) {
        this.failure ??= new Error(`not an SMTP reply: ${JSON.stringify(line.slice(0, 80))}`);
        continue;
      }
      this.pending.push((m[3] ?? '').trim());
      // "250-" continues a reply; "250 " or a bare "250" ends it.
      if (m[2] !== '-' || this.pending.length > MAX_LINES) {
        this.replies.push({ code: Number(m[1]), lines: this.pending });
        this.pending = [];
      }
    }
    if (this.buffer.length > MAX_LINE) this.failure ??= new Error('reply line too long');
    this.wake();
  }

  /** Resolves `work`, or rejects after `timeoutMs` (never after the overall deadline). */
  private async within<T>(timeoutMs: number, stage: string, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new SmtpTimeoutError(stage)), Math.max(0, Math.min(timeoutMs, this.deadline - Date.now())));
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The next complete reply, within `timeoutMs` and the deadline. */
  read(stage: string, timeoutMs: number): Promise<SmtpReply> {
    this.stage = stage;
    return new Promise<SmtpReply>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = (fail: Error | undefined, reply?: SmtpReply): void => {
        clearTimeout(timer);
        this.waiter = undefined;
        if (fail) reject(fail);
        else resolve(reply as SmtpReply);
      };
      const check = (): void => {
        const reply = this.replies.shift();
        if (reply) settle(undefined, reply);
        else if (this.failure) settle(this.failure);
        else if (this.closed) settle(new SmtpClosedError(stage));
        else this.waiter = check;
      };
      check();
      if (this.waiter === check && timeoutMs < this.deadline - Date.now()) {
        timer = setTimeout(() => {
          // A reply that comes later would be read as the next command's: the session is done.
          this.failure ??= new SmtpTimeoutError(stage);
          settle(this.failure);
        }, timeoutMs);
      }
    });
  }

  /** Sends one command line and reads its reply. */
  async command(line: string, timeoutMs: number): Promise<SmtpReply> {
    this.send([line]);
    return this.read(line.split(' ')[0] ?? line, timeoutMs);
  }

  /**
   * Writes command lines at once, without reading: RFC 2920 PIPELINING, for servers that announce it. The
   * caller then reads one reply per line, in order.
   */
  send(lines: readonly string[]): void {
    if (this.closed) throw new SmtpClosedError(lines[0] ?? '');
    for (const line of lines) this.transcript.push(`C: ${line}`);
    this.socket.write(`${lines.join('\r\n')}\r\n`, 'latin1');
  }

  /** Upgrades the connection after a 220 to STARTTLS; the certificate is not checked (opportunistic TLS). */
  async startTls(servername: string, timeoutMs: number): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    const secure = connectTls({ socket: plain, servername: /^[\d.:]+$/.test(servername) ? undefined : servername, rejectUnauthorized: false });
    this.socket = secure;
    this.buffer = '';
    this.listen(secure);
    await this.within(timeoutMs, 'TLS handshake', new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    }));
    this.transcript.push('C: (TLS established)');
  }

  /**
   * Says QUIT and closes without waiting for the answer, as Postfix's client does by default
   * (smtp_skip_quit_response): the 221 tells nothing, and waiting for it costs a round trip per probe.
   */
  /** Resolves once the connection is closed on our side: a per-domain session slot covers all of it. */
  quit(): Promise<void> {
    if (this.closed || this.socket.destroyed) return Promise.resolve();
    this.transcript.push('C: QUIT');
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    this.socket.end('QUIT\r\n', 'latin1', () => this.close());
    return closed;
  }

  close(): void {
    clearTimeout(this.deadlineTimer);
    this.socket.destroy();
  }
}
