import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { Command } from '../../src/milter/protocol.js';
import { configuredDaemon, startDaemon, startDaemonBehindPostfix } from '../support/daemon.js';
import { POSTFIX_OFFER, rawPeer, sendOn, type RawMilterPeer } from '../support/milter-client.js';
import { sendMessage } from '../support/smtp-client.js';
import { bigText, dangerousMessage } from '../support/test-messages.js';

const bodyFiles = (dir: string): string[] => readdirSync(dir).filter((name) => name.startsWith('milterkit-body-'));

describe('milterkit milter: the directory for spilled bodies', () => {
  it('is created private, swept at start of the bodies a dead daemon left, and refused when it is not the daemon\'s own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'milterkit-spool-'));
    const spool = join(dir, 'spool');
    /** A config file naming that directory. */
    const configure = (spoolDir: string): string => {
      const file = join(dir, `${spoolDir.split('/').pop()}.json`);
      writeFileSync(file, JSON.stringify({ temporaryDirectory: spoolDir, statsIntervalSeconds: 0 }));
      return file;
    };
    const run = (file: string) => spawnSync(process.execPath, ['dist/cli/main.js', 'milter', '--listen', 'inet:0@127.0.0.1', '--config', file], { encoding: 'utf8', timeout: 10_000 });
    try {
      // Missing: created, mode 700. Then a dead process's body and a living one's are in it.
      let daemon = await startDaemon(['--listen', 'inet:0@127.0.0.1', '--config', configure(spool)]);
      expect(await daemon.stop()).toBe(0);
      expect(statSync(spool).mode & 0o777).toBe(0o700);
      writeFileSync(join(spool, 'milterkit-body-999999999-0011223344556677'), 'left by a daemon killed with -9');
      writeFileSync(join(spool, `milterkit-body-${process.pid}-8899aabbccddeeff`), 'a living process');
      writeFileSync(join(spool, 'notes.txt'), 'not ours');
      daemon = await startDaemon(['--listen', 'inet:0@127.0.0.1', '--config', configure(spool)]);
      expect(daemon.lines.find((l) => l.event === 'swept')).toMatchObject({ directory: spool, files: 1 });
      expect(readdirSync(spool).sort()).toEqual([`milterkit-body-${process.pid}-8899aabbccddeeff`, 'notes.txt']);
      expect(await daemon.stop()).toBe(0);

      // Others may write in it, or it is another user's: refused, the daemon does not start.
      const open = join(dir, 'open');
      mkdirSync(open, { mode: 0o777 });
      chmodSync(open, 0o777);
      expect(run(configure(open))).toMatchObject({ status: 2, stderr: expect.stringContaining(`temporaryDirectory ${open}: others may write in it (mode 777)`) });
      const foreign = join(dir, 'foreign');
      mkdirSync(foreign, { mode: 0o700 });
      chownSync(foreign, 65534, 65534);
      expect(run(configure(foreign))).toMatchObject({ status: 2, stderr: expect.stringContaining(`temporaryDirectory ${foreign}: belongs to user 65534`) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('milterkit milter: a memory budget for all bodies of the process', () => {
  it('keeps bodies in memory while they fit in bodyMemoryBudgetBytes together, spills the rest, and removes every file at the end', async () => {
    const d = await configuredDaemon('milterkit-budget-', { temporaryDirectory: 'spool', memoryThresholdBytes: 8 * 1024 * 1024, bodyMemoryBudgetBytes: 1024 * 1024, health: '127.0.0.1:0' });
    const { daemon, port } = d;
    const spool = join(d.dir, 'spool');
    const peers: RawMilterPeer[] = [];
    try {
      const health = async () => (await (await fetch(`http://127.0.0.1:${d.healthPort}/health`)).json()) as { bodyBytesInMemory: number };
      // Four messages of 600 KB in progress at once: two budgets' worth.
      const piece = Buffer.from(bigText(60_000));
      for (let i = 0; i < 4; i++) {
        const peer = await rawPeer({ port });
        peer.socket.write(POSTFIX_OFFER);
        peer.send(Command.MAIL, '<a@example.com>\0');
        peer.send(Command.RCPT, '<b@example.org>\0');
        peer.send(Command.HEADER, `Subject\0 message ${i}\0`);
        for (let j = 0; j < 10; j++) peer.send(Command.BODY, piece);
        await peer.replied(1);
        peers.push(peer);
      }
      // Until every byte has come: the ones in memory, and at least two bodies in files.
      for (let i = 0; i < 100 && ((await health()).bodyBytesInMemory < 600_000 || bodyFiles(spool).length < 2); i++) await new Promise((r) => setTimeout(r, 20));
      const { bodyBytesInMemory } = await health();
      expect(bodyBytesInMemory).toBeLessThanOrEqual(1024 * 1024);
      expect(bodyBytesInMemory).toBeGreaterThan(0);
      expect(bodyFiles(spool).length).toBeGreaterThanOrEqual(2);
      for (const peer of peers) peer.send(Command.BODYEOB);
      await Promise.all(peers.map((peer) => peer.replied(2)));
      expect(peers.map((peer) => peer.replies.at(-1))).toEqual(['c', 'c', 'c', 'c']);
      for (let i = 0; i < 100 && bodyFiles(spool).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(bodyFiles(spool)).toEqual([]);
      expect((await health()).bodyBytesInMemory).toBe(0);
      expect(daemon.lines.filter((l) => l.event === 'message').map((l) => l.verdict)).toEqual(['clean', 'clean', 'clean', 'clean']);
    } finally {
      for (const peer of peers) peer.socket.destroy();
      expect(await d.stop()).toBe(0);
    }
  }, 30_000);
});

describe('milterkit milter: kill -9 behind Postfix with messages in flight', () => {
  it('every message is delivered exactly once and filtered, or tempfailed back to the client: none lost, none delivered unfiltered', async () => {
    const spool = mkdtempSync(join(tmpdir(), 'milterkit-kill-'));
    const slow = join(spool, 'slow.mjs');
    // Slow enough that the messages are in flight when the daemon is killed; bodies spill to files.
    writeFileSync(slow, 'export default () => ({ name: "slow", check: () => new Promise((resolve) => setTimeout(() => resolve({ action: "accept" }), 1500)) });\n');
    const setup = await startDaemonBehindPostfix(['alice'], () => ({ temporaryDirectory: join(spool, 'bodies'), memoryThresholdBytes: 1024, statsIntervalSeconds: 0, pipeline: [{ plugin: 'module', path: slow }, { plugin: 'defang' }] }));
    let restarted: Awaited<ReturnType<typeof startDaemon>> | undefined;
    try {
      const message = (id: string) => dangerousMessage(`message ${id}`, { text: bigText(20_000) }).replace('\r\n\r\n', `\r\nMessage-ID: <${id}@kill.test>\r\n\r\n`);
      // A connection the MTA drops in the middle of DATA is an answer too: no 250, so the client still has the message.
      const send = (id: string) => sendMessage(setup.postfix.port, message(id)).then((reply) => [id, reply] as const, (err: NodeJS.ErrnoException) => [id, `connection lost (${err.code ?? err.message})`] as const);
      const first = Array.from({ length: 10 }, (_, i) => send(`before-${i}`));
      for (let i = 0; i < 100 && bodyFiles(join(spool, 'bodies')).length < 5; i++) await new Promise((r) => setTimeout(r, 20));
      expect(bodyFiles(join(spool, 'bodies')).length).toBeGreaterThanOrEqual(5);
      setup.daemon.process.kill('SIGKILL');
      expect(await setup.daemon.exited).toBe(null);
      // What it spilled is still there, until a new daemon starts and sweeps it.
      expect(bodyFiles(join(spool, 'bodies')).length).toBeGreaterThanOrEqual(5);
      restarted = await startDaemon(['--config', setup.configFile]);
      expect(restarted.lines.find((l) => l.event === 'swept')?.files).toBeGreaterThanOrEqual(5);
      const second = await Promise.all(Array.from({ length: 5 }, (_, i) => send(`after-${i}`)));
      const replies = [...(await Promise.all(first)), ...second];

      const accepted = replies.filter(([, reply]) => reply.startsWith('250 ')).map(([id]) => `<${id}@kill.test>`);
      const refused = replies.filter(([, reply]) => /^4\d\d |^connection lost/.test(reply));
      // Each message has one of the two answers; the ones in flight when the daemon died were tempfailed.
      expect(accepted.length + refused.length, JSON.stringify(replies)).toBe(replies.length);
      expect(refused.filter(([id]) => id.startsWith('before-')).length).toBeGreaterThan(0);
      expect(accepted).toEqual(expect.arrayContaining(second.map(([id]) => `<${id}@kill.test>`)));

      await setup.postfix.waitForDelivery('alice', accepted.length, 20_000);
      // Nothing more comes later: exactly the accepted ones, once each.
      await new Promise((r) => setTimeout(r, 1000));
      const delivered = (await setup.postfix.delivered('alice')).map((m) => parseMessage(m));
      expect(delivered.map((m) => m.headers.get('message-id')).sort()).toEqual(accepted.sort());
      for (const m of delivered) expect([...m.walk()].map((p) => p.filename).filter(Boolean)).toEqual(['WARNING.txt']);
    } finally {
      await setup.stop();
      if (restarted) expect(await restarted.stop()).toBe(0);
      expect(existsSync(setup.socket)).toBe(false);
      rmSync(spool, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('milterkit milter: ends of message within the memory budget', () => {
  it('hands messages to the threads only while the bytes being worked on fit in bodyMemoryBudgetBytes', async () => {
    // Counts the messages the threads work on at once, across both threads (the count lives in a file).
    const counter = `
import { appendFileSync, readFileSync } from 'node:fs';
const file = new URL('count.txt', import.meta.url);
const now = () => readFileSync(file, 'utf8').split('').reduce((n, c) => n + (c === '+' ? 1 : -1), 0);
export default () => ({ name: 'count', async check() {
  appendFileSync(file, '+');
  const at = now();
  await new Promise((r) => setTimeout(r, 300));
  appendFileSync(file, '-');
  return { action: 'accept', log: { atOnce: at } };
} });
`;
    const run = async (budget: number): Promise<number[]> => {
      const d = await configuredDaemon('milterkit-work-budget-', { threads: 2, bodyMemoryBudgetBytes: budget, pipeline: [{ plugin: 'module', path: './count.mjs' }] }, { 'count.mjs': counter, 'count.txt': '' });
      const { daemon, port } = d;
      try {
        const replies = await Promise.all(Array.from({ length: 4 }, async () => {
          const peer = await rawPeer({ port });
          peer.socket.write(POSTFIX_OFFER);
          await peer.replied(1);
          const answer = await sendOn(peer, { subject: 'sixty kilobytes', body: bigText(60_000) });
          peer.socket.destroy();
          return answer.at(-1);
        }));
        expect(replies).toEqual(['c', 'c', 'c', 'c']);
        return daemon.lines.filter((l) => l.event === 'message').map((l) => l.atOnce as number);
      } finally {
        expect(await d.stop()).toBe(0);
      }
    };
    // Room for one 60 KB message at a time: one after another.
    expect(await run(100_000)).toEqual([1, 1, 1, 1]);
    // Room for all of them: together.
    expect(Math.max(...(await run(8 * 1024 * 1024)))).toBeGreaterThan(1);
  }, 30_000);
});
