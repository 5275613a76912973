import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { startPostfix, type PostfixInstance } from '../support/postfix.js';

/** Sends one message over SMTP; returns the reply to the end of DATA. */
async function send(port: number, message: string): Promise<string> {
  const socket = connect({ port, host: '127.0.0.1' });
  const commands = ['EHLO client.test', 'MAIL FROM:<sender@example.com>', 'RCPT TO:<alice@lab.test>', 'DATA', `${message}.`, 'QUIT'];
  return new Promise((resolve, reject) => {
    let buffer = '';
    let step = 0;
    let endOfData = '';
    const timer = setTimeout(() => reject(new Error(`SMTP timeout at step ${step}: ${buffer}\n${postfix.log().slice(-1500)}`)), 15_000);
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let m: RegExpExecArray | null;
      while ((m = /^(?:\d{3}-.*\r\n)*(\d{3} .*)\r\n/.exec(buffer))) {
        buffer = buffer.slice(m[0].length);
        if (step === 5) endOfData = m[1] as string;
        const next = commands[step++];
        if (next) socket.write(`${next}\r\n`);
        else {
          clearTimeout(timer);
          socket.destroy();
          resolve(endOfData);
        }
      }
    });
  });
}

let postfix: PostfixInstance;
let daemon: ChildProcess;
const output: string[] = [];
const dir = mkdtempSync(join(tmpdir(), 'milterkit-daemon-'));
const socketPath = join(dir, 'milter.sock');
// Postfix's smtpd runs as the postfix user: it must be able to reach the socket.
chmodSync(dir, 0o755);

beforeAll(async () => {
  // The daemon as users run it, on a unix socket the postfix user can reach.
  daemon = spawn(process.execPath, ['dist/cli/main.js', 'milter', '--listen', `unix:${socketPath}`, '--socket-mode', '666'], { stdio: ['ignore', 'pipe', 'inherit'] });
  daemon.stdout?.on('data', (d: Buffer) => output.push(...d.toString().trim().split('\n')));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('daemon did not start')), 10_000);
    daemon.stdout?.on('data', () => {
      if (output.some((l) => l.includes('"listening"'))) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  postfix = await startPostfix({ users: ['alice'], milter: `unix:${socketPath}` });
});

afterAll(async () => {
  await postfix?.stop();
  daemon?.kill('SIGTERM');
  await new Promise((resolve) => daemon?.once('exit', resolve));
  rmSync(dir, { recursive: true, force: true });
});

const exe = Buffer.from('MZ\x90\x00\x03\x00\x00\x00PE\x00\x00', 'latin1').toString('base64');

describe('milterkit milter (the daemon) behind a real Postfix', () => {
  it('delivers clean mail untouched, defangs a banned attachment, refuses message/partial; logs each message', async () => {
    const clean = 'From: a@example.com\r\nTo: alice@lab.test\r\nSubject: hello\r\nMessage-ID: <c1@example.com>\r\n\r\nJust text.\r\n';
    expect(await send(postfix.port, clean)).toMatch(/^250 /);
    const dangerous = [
      'From: a@example.com', 'To: alice@lab.test', 'Subject: invoice', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '',
      '--b', 'Content-Type: text/plain', '', 'See attached.', '--b', 'Content-Type: application/octet-stream; name="invoice.exe"', 'Content-Transfer-Encoding: base64', '', exe, '--b--', '',
    ].join('\r\n');
    expect(await send(postfix.port, dangerous)).toMatch(/^250 /);
    const partial = 'From: a@example.com\r\nSubject: part 1\r\nContent-Type: message/partial; id="x"; number=1; total=2\r\n\r\nfragment\r\n';
    expect(await send(postfix.port, partial)).toBe('550 5.7.1 Message refused: content not accepted by policy');

    const [first, second] = (await postfix.waitForDelivery('alice', 2, 10_000)).map((m) => parseMessage(m));
    expect(first?.headers.get('subject')).toBe('hello');
    expect(first?.headers.get('x-milterkit-defang')).toBeUndefined();
    expect(first?.root.text()).toBe('Just text.\n');
    expect(second?.headers.get('x-milterkit-defang')).toBe('changed; 2 replace banned-extension,executable-content');
    expect(second?.part('1')?.text()).toBe('See attached.');
    expect(second?.part('2')?.filename).toBe('WARNING.txt');
    expect(second?.toBuffer().toString('latin1')).not.toContain(exe);
    const verdicts = output.map((l) => JSON.parse(l) as { event: string; verdict?: string }).filter((l) => l.event === 'message').map((l) => l.verdict);
    expect(verdicts).toEqual(['clean', 'changed', 'reject']);
  });
});
