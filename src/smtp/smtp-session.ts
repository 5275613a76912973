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

  private constructor(socket: Socket, deadline: number) {
    this.socket = socket;
    this.deadline = deadline;
    this.listen(socket);
  }

  /** Connects within `timeoutMs` (and the deadline). */
  static async connect(host: string, port: number, timeoutMs: number, deadline: number): Promise<SmtpSession> {
    const socket = connectTcp({ host, port, noDelay: true });
    const session = new SmtpSession(socket, deadline);
    await session.within(timeoutMs, 'connect', new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    }));
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
    const limit = Math.max(0, Math.min(timeoutMs, this.deadline - Date.now()));
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        work,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new SmtpTimeoutError(stage)), limit);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The next complete reply. */
  async read(stage: string, timeoutMs: number): Promise<SmtpReply> {
    return this.within(
      timeoutMs,
      stage,
      new Promise<SmtpReply>((resolve, reject) => {
        const check = (): void => {
          const reply = this.replies.shift();
          if (reply) resolve(reply);
          else if (this.failure) reject(this.failure);
          else if (this.closed) reject(new SmtpClosedError(stage));
          else this.waiter = check;
        };
        check();
      }),
    );
  }

  /** Sends one command line and reads its reply. */
  async command(line: string, timeoutMs: number): Promise<SmtpReply> {
    if (this.closed) throw new SmtpClosedError(line);
    this.transcript.push(`C: ${line}`);
    this.socket.write(`${line}\r\n`, 'latin1');
    return this.read(line.split(' ')[0] ?? line, timeoutMs);
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

  /** Says QUIT without waiting long for the answer, then closes. */
  async quit(): Promise<void> {
    if (!this.closed) {
      try {
        await this.command('QUIT', 1000);
      } catch {
        // The answer to QUIT does not matter.
      }
    }
    this.close();
  }

  close(): void {
    this.socket.destroy();
  }
}
