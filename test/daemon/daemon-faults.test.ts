import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { Command } from '../../src/milter/protocol.js';
import { configuredDaemon, startDaemonBehindPostfix, type DaemonBehindPostfix } from '../support/daemon.js';
import { POSTFIX_OFFER, rawPeer, sendOn, sendOverMilter } from '../support/milter-client.js';
import { sendMessage, smtpDialogue } from '../support/smtp-client.js';
import { dangerousMessage } from '../support/test-messages.js';

/** What Postfix tells the client when the milter tempfails the message. */
const TEMPFAIL = /^451 4\.7\.1 /;
const EOM_TIMEOUT_MS = 2000;
const GRACE_MS = 500;

/** A message with an .exe whose Subject tells the fault plugin what to do, and a Message-ID to find it by. */
const faulty = (subject: string, id: string): string => dangerousMessage(subject).replace('\r\n\r\n', `\r\nMessage-ID: <${id}@faults.test>\r\n\r\n`);
const held = (setup: DaemonBehindPostfix): number => readdirSync(join(setup.postfix.dir, 'queue', 'hold'), { recursive: true }).filter((f) => /^[0-9A-F]{6,}$/.test(String(f).split('/').pop() ?? '')).length;

describe('milterkit milter behind Postfix: whatever a plugin does wrong, its message gets the fallback and the daemon stays up', () => {
  let setup: DaemonBehindPostfix;
  beforeAll(async () => {
    // The faulty plugin first, defang after it: a plugin error must never skip defang and deliver the .exe.
    setup = await startDaemonBehindPostfix(['alice', 'rcpt-throws', 'rcpt-bogus'], () => ({
      eomTimeoutMs: EOM_TIMEOUT_MS,
      threadGraceMs: GRACE_MS,
      threads: 2,
      statsIntervalSeconds: 0,
      pipeline: [{ plugin: 'module', path: resolve('test/support/fault-plugin.mjs') }, { plugin: 'defang' }],
    }));
  }, 60_000);
  afterAll(async () => {
    expect(await setup?.stop()).toBe(0);
  });

  const failures: [string, string, RegExp][] = [
    ['a synchronous throw', 'throw', /^plugin faults: check failed: thrown by check$/],
    ['a rejected promise', 'rejected', /^plugin faults: check failed: a rejected promise from check$/],
    ['a rejection nobody awaited', 'unawaited', /^plugin faults: work it started and did not wait for failed: a rejection nobody awaits$/],
    ['a throw in a timer', 'timer-throw', /^plugin faults: work it started and did not wait for failed: thrown in a timer$/],
    ['a throw in an event listener', 'listener-throw', /^plugin faults: work it started and did not wait for failed: thrown in an event listener$/],
    ['{ action: "Reject" }', 'answer Reject', /^plugin faults: bad answer: returned an unknown action "Reject"/],
    ['the bare string "reject"', 'answer bare', /^plugin faults: bad answer: returned "reject", not \{ action, \.\.\. \}$/],
    ['{ action: "bogus" }', 'answer bogus', /^plugin faults: bad answer: returned an unknown action "bogus"/],
    ['undefined', 'answer nothing', /^plugin faults: bad answer: returned undefined/],
    ['a 4xx reply on a reject', 'answer wrong-class', /^plugin faults: bad answer: action "reject" with a 4xx reply/],
    ['a reply that is not an SMTP reply', 'answer not-a-reply', /^plugin faults: bad answer: reply "try again later" is not an SMTP reply/],
    ['changed: "yes"', 'answer changed-yes', /^plugin faults: bad answer: changed must be true or false/],
    ['a throw of something that cannot even be shown', 'unprintable', /^plugin faults: work it started and did not wait for failed: \(an error that cannot be shown\)$/],
    ['process.kill of the daemon', 'kill-daemon', /^plugin faults: check failed: a plugin may not signal the daemon \(process\.kill\(\d+\)\)$/],
  ];
  it.each(failures)('%s: 451 to the client, the .exe is not delivered, one filter-error line naming the plugin, queue ID and Message-ID', async (_, subject, error) => {
    const id = subject.replace(/\s+/g, '-');
    expect(await sendMessage(setup.postfix.port, faulty(subject, id))).toMatch(TEMPFAIL);
    const line = await setup.daemon.waitFor((l) => l.event === 'filter-error' && l.messageId === `<${id}@faults.test>`);
    expect(line).toMatchObject({ stage: 'eom', plugin: 'faults', queueId: expect.stringMatching(/^[0-9A-F]{6,}$/), fallback: 'tempfail', error: expect.stringMatching(error) });
    expect(setup.daemon.lines.filter((l) => l.messageId === `<${id}@faults.test>`)).toHaveLength(1);
  });

  it('an answer read once: a reject that would read as an accept later stays a reject', async () => {
    for (const subject of ['flip 1', 'flip 8', 'mutate']) {
      const id = subject.replace(/\s+/g, '-');
      expect(await sendMessage(setup.postfix.port, faulty(subject, id)), subject).toBe('550 5.7.1 Command rejected');
      expect(await setup.daemon.waitFor((l) => l.event === 'message' && l.messageId === `<${id}@faults.test>`)).toMatchObject({ verdict: 'reject' });
    }
  });

  it('what a plugin writes to its thread\'s parentPort is never taken for an answer', async () => {
    expect(await sendMessage(setup.postfix.port, faulty('port', 'port'))).toBe('550 5.7.1 refused by the plugin');
    expect(setup.daemon.lines.filter((l) => l.event === 'plugin-error' && /parentPort/.test(String(l.error)))).toHaveLength(1);
    expect(setup.daemon.lines.filter((l) => l.event === 'thread-restart')).toEqual([]);
  });

  it('megabytes of output without a newline become one log line, cut short', async () => {
    expect(await sendMessage(setup.postfix.port, faulty('spew 20', 'spew'))).toMatch(/^250 /);
    const line = await setup.daemon.waitFor((l) => l.event === 'plugin-output' && String(l.text).startsWith('zzz'));
    expect(line).toMatchObject({ stream: 'stdout', text: expect.stringMatching(/^z{4096}… \(20967424 more characters cut\)$/) });
  });

  it('a quarantine without a reason is held, with the plugin named as the reason', async () => {
    const before = held(setup);
    expect(await sendMessage(setup.postfix.port, faulty('answer quarantine', 'quarantine'))).toMatch(/^250 /);
    expect(await setup.daemon.waitFor((l) => l.event === 'message' && l.messageId === '<quarantine@faults.test>')).toMatchObject({ verdict: 'quarantine', quarantine: 'held by plugin faults' });
    for (let i = 0; i < 100 && held(setup) === before; i++) await new Promise((r) => setTimeout(r, 50));
    expect(held(setup)).toBe(before + 1);
    expect(setup.postfix.log()).toMatch(/milter-hold: END-OF-MESSAGE .*milter triggers HOLD action/);
  });

  it('a failed begin (thrown or rejected) fails its message at the end; a failed recipient check tempfails that recipient only', async () => {
    for (const sender of ['begin-throws@example.com', 'begin-rejects@example.com']) {
      expect(await sendMessage(setup.postfix.port, faulty('fine', sender.split('@')[0] as string), { from: sender })).toMatch(TEMPFAIL);
    }
    const begins = setup.daemon.lines.filter((l) => l.event === 'filter-error' && /begin/.test(String(l.error)));
    expect(begins.map((l) => l.error)).toEqual(['plugin faults: begin failed: begin threw', 'plugin faults: begin failed: begin rejected']);
    const replies = await smtpDialogue(setup.postfix.port, ['EHLO client.test', 'MAIL FROM:<a@example.com>', 'RCPT TO:<rcpt-throws@lab.test>', 'RCPT TO:<rcpt-bogus@lab.test>', 'RCPT TO:<alice@lab.test>', 'QUIT']);
    expect(replies.slice(3, 6)).toEqual([expect.stringMatching(/^451 4\.7\.1 /), expect.stringMatching(/^451 4\.7\.1 /), expect.stringMatching(/^250 /)]);
    expect(setup.daemon.lines.filter((l) => l.event === 'filter-error' && l.stage === 'envRcpt').map((l) => [l.plugin, l.recipient, l.error])).toEqual([
      ['faults', '<rcpt-throws@lab.test>', 'plugin faults: recipient check failed: the recipient check threw'],
      ['faults', '<rcpt-bogus@lab.test>', expect.stringMatching(/^plugin faults: recipient check failed: returned an unknown action "deny" for a recipient/)],
    ]);
  });

  it('a throw after its message was answered is logged, and nothing else happens', async () => {
    expect(await sendMessage(setup.postfix.port, faulty('late-throw', 'late'))).toMatch(/^250 /);
    expect(await setup.daemon.waitFor((l) => l.event === 'plugin-error' && /long after/.test(String(l.error)))).toMatchObject({ plugin: 'faults', note: 'after its message was answered: nothing to fail' });
  });

  it('a CPU-bound plugin (3 s, never yielding) stalls no other connection; at eomTimeoutMs its message is tempfailed and its thread replaced', async () => {
    // The busy one and another at once: the other must not wait for it (another thread takes it).
    const started = Date.now();
    const busy = sendMessage(setup.postfix.port, faulty('busy 3000', 'busy-long')).then((reply) => [reply, Date.now() - started] as const);
    await new Promise((r) => setTimeout(r, 200));
    expect(await sendMessage(setup.postfix.port, faulty('fine', 'beside-busy'))).toMatch(/^250 /);
    // Well before the busy one is done (3 s): without threads it waited for it.
    expect(Date.now() - started).toBeLessThan(2000);
    // The MTA has the fallback at the limit, not when the plugin is done; the thread is stopped after the grace.
    const [reply, after] = await busy;
    expect(reply).toMatch(TEMPFAIL);
    expect(after).toBeGreaterThanOrEqual(EOM_TIMEOUT_MS);
    expect(after).toBeLessThan(EOM_TIMEOUT_MS + 900);
    const restart = await setup.daemon.waitFor((l) => l.event === 'thread-restart', 5000);
    expect(restart.reason).toMatch(new RegExp(`did not answer within ${GRACE_MS} ms \\(threadGraceMs\\) after the time of message [0-9A-F]+ was up: a plugin blocks it`));
    // No verdict for it afterwards: its thread was stopped before the plugin was done.
    await new Promise((r) => setTimeout(r, 1500));
    expect(setup.daemon.lines.some((l) => l.event === 'message' && l.messageId === '<busy-long@faults.test>')).toBe(false);
    // Heavy work within the time is only slow: that message is delivered.
    expect(await sendMessage(setup.postfix.port, faulty('busy 1500', 'busy-short'))).toMatch(/^250 /);
  }, 30_000);

  it('a plugin that loops for ever, hangs, or ends its thread: the fallback, and the daemon serves the next message', async () => {
    for (const subject of ['loop', 'hang', 'exit']) {
      const restarts = setup.daemon.lines.filter((l) => l.event === 'thread-restart').length;
      expect(await sendMessage(setup.postfix.port, faulty(subject, subject))).toMatch(TEMPFAIL);
      // A hung promise leaves its thread answering (the abort is heard); the other two cost the thread.
      if (subject !== 'hang') await setup.daemon.waitFor((l) => l.event === 'thread-restart' && setup.daemon.lines.filter((x) => x.event === 'thread-restart').length > restarts, 5000);
      expect(await sendMessage(setup.postfix.port, faulty('fine', `after-${subject}`))).toMatch(/^250 /);
    }
    expect(setup.daemon.lines.filter((l) => l.event === 'thread-restart').at(-1)?.reason).toBe('exited with code 3');
  }, 30_000);

  it('delivered only the messages whose plugins did their work, each .exe replaced by defang', async () => {
    const expected = ['<after-exit@faults.test>', '<after-hang@faults.test>', '<after-loop@faults.test>', '<beside-busy@faults.test>', '<busy-short@faults.test>', '<late@faults.test>', '<spew@faults.test>'];
    // Postfix delivers what it accepted a moment later: wait for them, then make sure no other came.
    await setup.postfix.waitForDelivery('alice', expected.length, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    const delivered = (await setup.postfix.delivered('alice')).map((m) => parseMessage(m));
    expect(delivered.map((m) => m.headers.get('message-id')).sort()).toEqual(expected.sort());
    for (const message of delivered) expect([...message.walk()].map((p) => p.filename).filter(Boolean)).toEqual(['WARNING.txt']);
    expect(setup.daemon.process.exitCode).toBe(null);
  });
});

describe('milterkit milter: one pipeline thread, faults beside legitimate work', () => {
  /** A daemon on a loopback port with the fault plugin and a single thread, its health address, and a way to ask it. */
  async function oneThread(extra: Record<string, unknown> = {}) {
    const d = await configuredDaemon('milterkit-one-thread-', { threads: 1, health: '127.0.0.1:0', pipeline: [{ plugin: 'module', path: resolve('test/support/fault-plugin.mjs') }], ...extra });
    return {
      ...d,
      health: async () => {
        const response = await fetch(`http://127.0.0.1:${d.healthPort}/health`);
        return { code: response.status, body: (await response.json()) as Record<string, unknown> };
      },
      stop: async () => expect(await d.stop()).toBe(0),
    };
  }

  it('an MTA that hangs up beside a busy thread costs that thread nothing: the busy message is answered', async () => {
    const d = await oneThread({ threadGraceMs: 200 });
    const [busy, quitter] = [await rawPeer({ port: d.port }), await rawPeer({ port: d.port })];
    try {
      for (const peer of [busy, quitter]) {
        peer.socket.write(POSTFIX_OFFER);
        await peer.replied(1);
      }
      // The fault plugin checks recipients: the MTA waits at RCPT too.
      const answered = sendOn(busy, { subject: 'busy 1500', rcptAnswered: true });
      await new Promise((r) => setTimeout(r, 200));
      // Its message waits behind the busy one in the only thread; then its MTA goes away.
      quitter.send(Command.MAIL, '<a@example.com>\0');
      quitter.send(Command.BODYEOB);
      await new Promise((r) => setTimeout(r, 100));
      quitter.socket.destroy();
      expect(await answered).toEqual(['c', 'c']);
      expect(d.daemon.lines.find((l) => l.event === 'message')).toMatchObject({ verdict: 'clean', busy: 1500 });
      expect(d.daemon.lines.filter((l) => l.event === 'thread-restart')).toEqual([]);
    } finally {
      busy.socket.destroy();
      await d.stop();
    }
  }, 30_000);

  it('a message whose time runs out while it waits for a thread is never worked on afterwards', async () => {
    // Once one of its threads has died, a new one takes 3 s to build the plugin.
    const slowAgain = `
import { existsSync, writeFileSync } from 'node:fs';
const died = new URL('died', import.meta.url);
export default async function () {
  if (existsSync(died)) await new Promise((r) => setTimeout(r, 3000));
  return {
    name: 'slow-again',
    begin() {},
    check(message) {
      const subject = message.headers.get('subject') ?? '';
      console.log('check ran for ' + subject);
      if (subject.includes('die')) { writeFileSync(died, ''); process.exit(1); }
      return { action: 'accept' };
    },
  };
}
`;
    const d = await configuredDaemon('milterkit-late-thread-', { threads: 1, eomTimeoutMs: 1500, pipeline: [{ plugin: 'module', path: './slow-again.mjs' }] }, { 'slow-again.mjs': slowAgain });
    const { daemon, port } = d;
    try {
      expect((await sendOverMilter({ port }, 'die')).at(-1)).toBe('t');
      expect((await sendOverMilter({ port }, 'second')).at(-1)).toBe('t');
      // By now the new thread is up (1 s pause, 3 s to build): had the second message waited for it, its check would have run.
      await new Promise((r) => setTimeout(r, 5000));
      expect(daemon.lines.filter((l) => l.event === 'plugin-output').map((l) => l.text)).toEqual(['check ran for die']);
      const asked = Date.now();
      expect(await daemon.stop()).toBe(0);
      expect(Date.now() - asked).toBeLessThan(3000);
    } finally {
      await d.stop();
    }
  }, 30_000);

  it('while no thread is ready the health endpoint says so (503), and mail waits for the new one', async () => {
    const d = await oneThread();
    try {
      expect((await d.health()).code).toBe(200);
      // The thread ends itself; it served under 10 s, so its replacement comes after a pause.
      expect((await sendOverMilter({ port: d.port }, 'exit', { rcptAnswered: true })).at(-1)).toBe('t');
      const restart = await d.daemon.waitFor((l) => l.event === 'thread-restart');
      expect(restart).toMatchObject({ reason: 'exited with code 3', restartInMs: 1000 });
      expect(await d.health()).toMatchObject({ code: 503, body: { status: 'no pipeline threads', pipelineThreads: 0 } });
      // A message meanwhile waits for the replacement rather than failing.
      expect(await sendOverMilter({ port: d.port }, 'fine', { rcptAnswered: true })).toEqual(['O', 'c', 'c']);
      expect(await d.health()).toMatchObject({ code: 200, body: { status: 'ok', pipelineThreads: 1, threadRestarts: 1 } });
    } finally {
      await d.stop();
    }
  }, 30_000);
});
