import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startPostfix, type PostfixInstance } from './postfix.js';

/**
 * Sends each command (CRLF added) after reading the previous reply and returns every reply, the greeting first;
 * multi-line replies are joined with '\n'. The whole dialog is bounded by timeoutMs.
 */
function smtpDialog(port: number, commands: string[], timeoutMs = 10_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const replies: string[] = [];
    let buffer = '';
    let lines: string[] = [];
    const timer = setTimeout(
      () => socket.destroy(new Error(`SMTP dialog timed out; replies so far: ${replies.join(' | ')}`)),
      timeoutMs,
    );
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(replies);
    });
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let eol: number;
      while ((eol = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        lines.push(line);
        if (/^\d{3}-/.test(line)) continue; // more lines of this reply follow
        replies.push(lines.join('\n'));
        lines = [];
        const next = commands[replies.length - 1];
        if (next === undefined) socket.end();
        else socket.write(`${next}\r\n`);
      }
    });
  });
}

/** A whole session delivering one message; returns the replies. */
function sendMessage(pf: PostfixInstance, to: string, subject: string): Promise<string[]> {
  return smtpDialog(pf.port, [
    'EHLO client.example.test',
    'MAIL FROM:<sender@example.test>',
    `RCPT TO:<${to}>`,
    'DATA',
    `From: sender@example.test\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\nHello from the harness test.\r\n.`,
    'QUIT',
  ]);
}

const codes = (replies: string[]): string[] => replies.map((r) => r.slice(0, 3));

/** Processes whose environment points at this instance's config (master passes MAIL_CONFIG to every child). */
function processesOf(pf: PostfixInstance): number[] {
  const needle = `MAIL_CONFIG=${pf.dir}/conf\0`;
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return `${readFileSync(`/proc/${pid}/environ`, 'latin1')}\0`.includes(needle);
      } catch {
        return false; // exited meanwhile, or a kernel thread
      }
    })
    .map(Number);
}

describe('startPostfix (real Postfix on 127.0.0.1)', () => {
  const started: PostfixInstance[] = [];
  const start = async (options: Parameters<typeof startPostfix>[0]): Promise<PostfixInstance> => {
    const pf = await startPostfix(options);
    started.push(pf);
    return pf;
  };
  afterEach(async () => {
    await Promise.all(started.splice(0).map((pf) => pf.stop()));
  });

  it('delivers mail for a listed user into its Maildir', async () => {
    const pf = await start({ users: ['alice', 'bob'] });
    expect(pf.host).toBe('127.0.0.1');
    expect(pf.domain).toBe('lab.test');

    const replies = await sendMessage(pf, 'alice@lab.test', 'harness delivery');
    expect(codes(replies), replies.join('\n')).toEqual(['220', '250', '250', '250', '354', '250', '221']);

    const [message] = await pf.waitForDelivery('alice', 1, 15_000);
    const text = message!.toString('latin1');
    expect(text).toContain('Delivered-To: alice@lab.test');
    expect(text).toContain('Subject: harness delivery');
    expect(text).toContain('Hello from the harness test.');
    expect(await pf.delivered('bob')).toEqual([]);
    expect(pf.log()).toMatch(/postfix\/virtual\[\d+\]: .*to=<alice@lab\.test>.*status=sent/);
  });

  it('lists delivered messages oldest first', async () => {
    const pf = await start({ users: ['bob'] });
    for (const [i, subject] of ['first', 'second', 'third'].entries()) {
      await sendMessage(pf, 'bob@lab.test', subject);
      await pf.waitForDelivery('bob', i + 1, 15_000);
    }
    const subjects = (await pf.delivered('bob')).map((m) => /^Subject: (.*)$/m.exec(m.toString())?.[1]);
    expect(subjects).toEqual(['first', 'second', 'third']);
  });

  it('refuses an unknown recipient at RCPT with 550 5.1.1', async () => {
    const pf = await start({ users: ['alice'] });
    const replies = await smtpDialog(pf.port, [
      'HELO client.example.test',
      'MAIL FROM:<>',
      'RCPT TO:<nobody-here@lab.test>',
      'RCPT TO:<alice@lab.test>',
      'QUIT',
    ]);
    expect(replies[3]).toMatch(/^550 5\.1\.1 <nobody-here@lab\.test>: Recipient address rejected/);
    expect(replies[4]).toMatch(/^250 /);
  });

  it('runs two instances side by side', async () => {
    const [a, b] = await Promise.all([start({ users: ['alice'] }), start({ users: ['carol'], domain: 'other.test' })]);
    expect(a!.port).not.toBe(b!.port);
    expect(a!.dir).not.toBe(b!.dir);

    await Promise.all([sendMessage(a!, 'alice@lab.test', 'to a'), sendMessage(b!, 'carol@other.test', 'to b')]);
    const [toA] = await a!.waitForDelivery('alice', 1, 15_000);
    const [toB] = await b!.waitForDelivery('carol', 1, 15_000);
    expect(toA!.toString()).toContain('Subject: to a');
    expect(toB!.toString()).toContain('Subject: to b');
    // Each knows only its own users.
    const [, , , rcpt] = await smtpDialog(b!.port, ['HELO x', 'MAIL FROM:<>', 'RCPT TO:<alice@other.test>', 'QUIT']);
    expect(rcpt).toMatch(/^550 5\.1\.1 /);
  });

  it('stop() ends every Postfix process of the instance and removes its dir', async () => {
    const pf = await start({ users: ['alice'] });
    await sendMessage(pf, 'alice@lab.test', 'before stop');
    await pf.waitForDelivery('alice', 1, 15_000);
    expect(processesOf(pf).length).toBeGreaterThan(0);

    await pf.stop();
    expect(existsSync(pf.dir)).toBe(false);
    expect(processesOf(pf)).toEqual([]);
    await expect(smtpDialog(pf.port, ['QUIT'], 2_000)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await pf.stop(); // a second call is harmless
  });

  it('passes milter settings and extra main.cf settings through', async () => {
    // Nothing listens on port 1: with milter_default_action = tempfail the session is refused with 451 4.7.1.
    const pf = await start({
      users: ['alice'],
      milter: 'inet:127.0.0.1:1',
      milterDefaultAction: 'tempfail',
      extraMainCf: { smtpd_banner: '$myhostname ESMTP harness-banner', milter_connect_timeout: '5s' },
    });
    // smtpd holds the milter's verdict on CONNECT and EHLO back until MAIL FROM.
    const replies = await smtpDialog(pf.port, ['EHLO client.example.test', 'MAIL FROM:<sender@example.test>', 'QUIT']);
    expect(replies[0]).toBe('220 mail.lab.test ESMTP harness-banner');
    expect(replies[2]).toMatch(/^451 4\.7\.1 /);
    expect(pf.log()).toContain('connect to Milter service inet:127.0.0.1:1: Connection refused');
  });

  it('rejects option values that would break the generated config', async () => {
    await expect(startPostfix({ users: ['bad user'] })).rejects.toThrow(/unsupported user name/);
    await expect(startPostfix({ users: ['alice'], milter: 'inet:192.0.2.1:9000' })).rejects.toThrow(/127\.0\.0\.1/);
  });
});
