import { connect } from 'node:net';

/**
 * A tiny SMTP client for tests: sends each command after the previous reply and returns the last line of
 * every reply (the greeting first). A message is sent as one command: its text, then "\r\n." (no dot-stuffing:
 * test messages have no line starting with a dot).
 */
export async function smtpDialogue(port: number, commands: readonly (string | Buffer)[], timeoutMs = 30_000): Promise<string[]> {
  const socket = connect({ port, host: '127.0.0.1' });
  const replies: string[] = [];
  let buffer = '';
  let waiting: ((error?: Error) => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    let m: RegExpExecArray | null;
    while ((m = /^(?:\d{3}-.*\r\n)*(\d{3} .*)\r\n/.exec(buffer))) {
      replies.push(m[1] as string);
      buffer = buffer.slice(m[0].length);
      waiting?.();
    }
  });
  socket.on('error', (err) => waiting?.(err));
  const timer = setTimeout(() => waiting?.(new Error(`SMTP timeout after ${replies.length} replies: ${replies.join(' | ')}`)), timeoutMs);
  const next = (): Promise<void> => new Promise((resolve, reject) => (waiting = (error) => (error ? reject(error) : resolve())));
  try {
    await next();
    for (const command of commands) {
      socket.write(typeof command === 'string' ? `${command}\r\n` : Buffer.concat([command, Buffer.from('\r\n')]));
      await next();
    }
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
  return replies;
}

/** One message in one session; returns the reply to the end of DATA. */
export async function sendMessage(port: number, message: string | Buffer, envelope: { from?: string; to?: string } = {}): Promise<string> {
  const data = typeof message === 'string' ? `${message.replace(/(?:\r\n)?$/, '\r\n')}.` : Buffer.concat([message, Buffer.from('.')]);
  const replies = await smtpDialogue(port, ['EHLO client.test', `MAIL FROM:<${envelope.from ?? 'sender@example.com'}>`, `RCPT TO:<${envelope.to ?? 'alice@lab.test'}>`, 'DATA', data, 'QUIT']);
  return replies[5] ?? replies.at(-1) ?? '';
}
