import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';
import { DAEMON_NODE_FLAGS } from '../../src/daemon/node-flags.js';
import { configuredDaemon, startDaemon, startDaemonBehindPostfix, type DaemonBehindPostfix } from '../support/daemon.js';
import { Command } from '../../src/milter/protocol.js';
import { POSTFIX_OFFER, rawPeer, sendOn, sendOverMilter } from '../support/milter-client.js';
import { sendMessage } from '../support/smtp-client.js';
import { dangerousMessage } from '../support/test-messages.js';

/**
 * A plugin module that says which version of itself ran (a reload must load the module anew), and
 * takes its time when asked ("slow" in the Subject), so that a message can be in flight across a reload.
 */
const tagger = (version: number): string => `
export default function tagger() {
  return {
    name: 'tagger',
    async check(message) {
      if ((message.headers.get('subject') ?? '').includes('slow')) await new Promise((resolve) => setTimeout(resolve, 1500));
      message.headers.add('X-Tagger-Version', '${version}');
      return { action: 'accept', changed: true, log: { tagger: ${version} } };
    },
  };
}
`;

const withId = (message: string, id: string): string => message.replace('\r\n\r\n', `\r\nMessage-ID: <${id}@signals.test>\r\n\r\n`);
const plain = (subject: string, id: string): string => withId(`From: a@example.com\r\nTo: alice@lab.test\r\nSubject: ${subject}\r\n\r\nHello.\r\n`, id);

describe('milterkit milter: SIGHUP reloads the configuration, the policy and the plugin modules', () => {
  let setup: DaemonBehindPostfix;
  let dir: string;
  const pipelineOf = () => [{ plugin: 'module', path: join(dir, 'tagger.mjs') }, { plugin: 'defang', policy: join(dir, 'policy.json') }];
  let good: string;
  /** The config file as it was at start, with some keys changed. */
  const rewrite = (config: Record<string, unknown>): void => writeFileSync(setup.configFile, JSON.stringify({ ...(JSON.parse(good) as Record<string, unknown>), ...config }));
  const hup = async (): Promise<Record<string, unknown>> => {
    const seen = setup.daemon.lines.length;
    setup.daemon.process.kill('SIGHUP');
    return setup.daemon.waitFor((l) => (l.event === 'reloaded' || l.event === 'reload-failed') && setup.daemon.lines.indexOf(l) >= seen, 15_000);
  };
  const delivered = async (id: string): Promise<ReturnType<typeof parseMessage>> => {
    for (let i = 0; i < 200; i++) {
      const found = (await setup.postfix.delivered('alice')).map((m) => parseMessage(m)).find((m) => m.headers.get('message-id') === `<${id}@signals.test>`);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${id} was not delivered`);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'milterkit-reload-'));
    writeFileSync(join(dir, 'tagger.mjs'), tagger(1));
    writeFileSync(join(dir, 'policy.json'), JSON.stringify({}));
    setup = await startDaemonBehindPostfix(['alice'], () => ({ statsIntervalSeconds: 0, threads: 2, pipeline: pipelineOf() }));
    good = readFileSync(setup.configFile, 'utf8');
  }, 60_000);
  afterAll(async () => {
    expect(await setup?.stop()).toBe(0);
    expect(setup.daemon.lines.filter((l) => l.event === 'signal').map((l) => l.signal)).toEqual([...Array(6).fill('SIGHUP'), 'SIGTERM']);
    expect(existsSync(setup.socket)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it('new messages use the new configuration; a message in flight finishes on the old one', async () => {
    const inFlight = sendMessage(setup.postfix.port, withId(dangerousMessage('slow one'), 'in-flight'));
    await new Promise((r) => setTimeout(r, 500));
    // A new module version, and a policy that refuses what the old one replaced.
    writeFileSync(join(dir, 'tagger.mjs'), tagger(2));
    writeFileSync(join(dir, 'policy.json'), JSON.stringify({ actions: { 'banned-extension': 'reject', 'executable-content': 'reject' } }));
    expect(await hup()).toMatchObject({ event: 'reloaded', why: 'SIGHUP', plugins: ['tagger', 'defang'] });

    expect(await sendMessage(setup.postfix.port, withId(dangerousMessage('after the reload'), 'refused'))).toBe('550 5.7.1 Message refused: content not accepted by policy');
    expect(await sendMessage(setup.postfix.port, plain('after the reload', 'new'))).toMatch(/^250 /);
    expect(await inFlight).toMatch(/^250 /);
    const old = await delivered('in-flight');
    expect(old.headers.get('x-tagger-version')).toBe('1');
    expect([...old.walk()].map((p) => p.filename).filter(Boolean)).toEqual(['WARNING.txt']);
    expect((await delivered('new')).headers.get('x-tagger-version')).toBe('2');
    expect(setup.daemon.lines.filter((l) => l.event === 'message').map((l) => [l.messageId, l.verdict, l.tagger])).toEqual([
      ['<refused@signals.test>', 'reject', 2],
      ['<new@signals.test>', 'changed', 2],
      ['<in-flight@signals.test>', 'changed', 1],
    ]);
  }, 30_000);

  it('a configuration that does not load is refused with its reason, and the one in force stays', async () => {
    const broken: [string, () => void, RegExp][] = [
      ['a config file that is not JSON', () => writeFileSync(setup.configFile, '{ "pipeline": [ }'), /milterkit\.json: .*JSON/],
      ['an unknown key', () => rewrite({ maxConections: 5 }), /unknown key "maxConections"/],
      ['a policy that does not validate', () => (rewrite({}), writeFileSync(join(dir, 'policy.json'), JSON.stringify({ actions: { 'banned-extension': 'explode' } }))), /policy\.json/],
      ['a module that throws as it loads', () => (writeFileSync(join(dir, 'policy.json'), '{}'), writeFileSync(join(dir, 'tagger.mjs'), 'throw new Error("broken module");\n')), /broken module/],
    ];
    for (const [what, breakIt, reason] of broken) {
      breakIt();
      const line = await hup();
      expect(line, what).toMatchObject({ event: 'reload-failed', kept: 'the configuration in force' });
      expect(String(line.error), what).toMatch(reason);
      // Still the configuration of the last good reload: version 2, and executables refused.
      expect(await sendMessage(setup.postfix.port, withId(dangerousMessage('still refused'), `${what.replace(/\W+/g, '-')}`))).toBe('550 5.7.1 Message refused: content not accepted by policy');
    }
    writeFileSync(setup.configFile, good);
    writeFileSync(join(dir, 'tagger.mjs'), tagger(3));
    expect(await hup()).toMatchObject({ event: 'reloaded' });
    expect(await sendMessage(setup.postfix.port, plain('fixed', 'fixed'))).toMatch(/^250 /);
    expect((await delivered('fixed')).headers.get('x-tagger-version')).toBe('3');
    expect(setup.daemon.lines.filter((l) => l.event === 'reload-failed')).toHaveLength(4);
  }, 60_000);
});

describe('milterkit milter: what a reload cannot change, and how the daemon ends', () => {
  it('keys that need a restart keep their values and the log says so', async () => {
    const d = await configuredDaemon('milterkit-restart-keys-', (dir) => ({ listen: `unix:${join(dir, 'a.sock')}` }));
    const socket = join(d.dir, 'a.sock');
    try {
      d.rewrite({ listen: `unix:${join(d.dir, 'b.sock')}`, threads: 1 });
      d.daemon.process.kill('SIGHUP');
      expect(await d.daemon.waitFor((l) => l.event === 'reloaded')).toMatchObject({ threads: 1, restartNeeded: ['listen'] });
      expect(existsSync(socket)).toBe(true);
      expect(existsSync(join(d.dir, 'b.sock'))).toBe(false);
    } finally {
      expect(await d.stop()).toBe(0);
    }
    expect(existsSync(socket)).toBe(false);
  });

  it('SIGTERM and SIGINT stop it gracefully, an error of its own ends it with code 70: each logged, the socket removed every time', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'milterkit-exits-'));
    const socket = join(dir, 'milter.sock');
    try {
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        const daemon = await startDaemon(['--listen', `unix:${socket}`]);
        expect(existsSync(socket)).toBe(true);
        daemon.process.kill(signal);
        expect(await daemon.exited).toBe(0);
        expect(daemon.lines.filter((l) => l.event === 'signal').map((l) => l.signal)).toEqual([signal]);
        expect(existsSync(socket)).toBe(false);
      }
      // An exception in the connection loop's thread is the daemon's own: it is not trusted to go on.
      const daemon = await startDaemon(['--listen', `unix:${socket}`], { nodeFlags: [...DAEMON_NODE_FLAGS, '--import', resolve('test/support/throw-in-main-thread.mjs')] });
      expect(await daemon.waitFor((l) => l.event === 'fatal')).toMatchObject({ error: expect.stringContaining('an error of the daemon itself') });
      expect(await daemon.exited).toBe(70);
      expect(existsSync(socket)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('milterkit milter --workers: SIGHUP through the primary', () => {
  it('reloads every worker; a worker started later gets the last configuration that loaded, even when the file is broken since', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'milterkit-cluster-reload-'));
    const file = join(dir, 'milterkit.json');
    const config = (version: number) => ({ listen: 'inet:0@127.0.0.1', workers: 2, threads: 1, statsIntervalSeconds: 0, pipeline: [{ plugin: 'module', path: `./tagger-${version}.mjs` }] });
    writeFileSync(join(dir, 'tagger-1.mjs'), tagger(1));
    writeFileSync(file, JSON.stringify(config(1)));
    const daemon = await startDaemon(['--config', file], { workers: 2 });
    try {
      writeFileSync(join(dir, 'tagger-2.mjs'), tagger(2));
      writeFileSync(file, JSON.stringify(config(2)));
      daemon.process.kill('SIGHUP');
      await daemon.waitFor((l) => l.event === 'reloaded' && l.worker === 1);
      await daemon.waitFor((l) => l.event === 'reloaded' && l.worker === 2);
      expect(daemon.lines.filter((l) => l.event === 'signal')).toEqual([expect.objectContaining({ signal: 'SIGHUP' })]);
      expect(daemon.lines.find((l) => l.event === 'reload')).toMatchObject({ workers: 2 });

      // Broken since: a reload is refused by the primary, and a replacement worker still starts, on version 2.
      writeFileSync(file, '{');
      daemon.process.kill('SIGHUP');
      await daemon.waitFor((l) => l.event === 'reload-failed');
      const worker = daemon.lines.find((l) => l.event === 'listening' && l.worker === 1)?.pid as number;
      process.kill(worker, 'SIGKILL');
      const replaced = await daemon.waitFor((l) => l.event === 'listening' && l.worker === 3, 15_000);
      expect(replaced.plugins).toEqual(['tagger']);
      expect(daemon.lines.filter((l) => l.event === 'worker-exit')).toEqual([expect.objectContaining({ worker: 1, signal: 'SIGKILL' })]);
      // Connections go to the workers in turn: every message, whichever worker took it, ran version 2.
      const { port } = replaced.address as { port: number };
      for (let i = 0; i < 4; i++) expect((await sendOverMilter({ port }, `message ${i}`)).at(-1)).toBe('c');
      expect(daemon.lines.filter((l) => l.event === 'message').map((l) => l.tagger)).toEqual([2, 2, 2, 2]);
      expect(new Set(daemon.lines.filter((l) => l.event === 'message').map((l) => l.worker))).toEqual(new Set([2, 3]));
    } finally {
      expect(await daemon.stop()).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('milterkit milter: a reload and the connections and messages already there', () => {
  const refuser = 'export default () => ({ name: "gate", check: () => ({ action: "accept" }), recipient: (envelope, rcpt) => (rcpt.includes("blocked") ? { action: "reject", reply: "550 5.7.1 not that one" } : undefined) });\n';

  it('a recipient check added by a reload still applies on a connection made before it: at the end, to the whole message', async () => {
    const d = await configuredDaemon('milterkit-reload-rcpt-', { threads: 1, pipeline: [{ plugin: 'defang' }] }, { 'gate.mjs': refuser });
    const { daemon, port } = d;
    const old = await rawPeer({ port });
    try {
      // Negotiated without recipient checks: the MTA does not wait at RCPT on this connection.
      old.socket.write(POSTFIX_OFFER);
      await old.replied(1);
      d.rewrite({ threads: 1, pipeline: [{ plugin: 'module', path: './gate.mjs' }, { plugin: 'defang' }] });
      daemon.process.kill('SIGHUP');
      await daemon.waitFor((l) => l.event === 'reloaded');
      expect(await sendOn(old, { subject: 'to a blocked one', recipients: ['ok@example.org', 'blocked@example.org'] })).toEqual(['y']);
      expect(old.frames.at(-1)?.data.toString('latin1')).toBe('550 5.7.1 not that one\0');
      expect(await sendOn(old, { subject: 'to fine ones', recipients: ['ok@example.org'] })).toEqual(['c']);
      // A connection made after it is asked at RCPT, recipient by recipient.
      const fresh = await rawPeer({ port });
      fresh.socket.write(POSTFIX_OFFER);
      await fresh.replied(1);
      expect(await sendOn(fresh, { subject: 'to both', recipients: ['ok@example.org', 'blocked@example.org'], rcptAnswered: true })).toEqual(['c', 'y', 'c']);
      fresh.socket.destroy();
    } finally {
      old.socket.destroy();
      expect(await d.stop()).toBe(0);
    }
  }, 30_000);

  it('a message whose body was spilled keeps its file across a reload and is filtered', async () => {
    const d = await configuredDaemon('milterkit-reload-spill-', { memoryThresholdBytes: 1024, temporaryDirectory: 'bodies' });
    const { daemon, port } = d;
    const bodies = join(d.dir, 'bodies');
    const peer = await rawPeer({ port });
    try {
      peer.socket.write(POSTFIX_OFFER);
      await peer.replied(1);
      peer.send(Command.MAIL, '<a@example.com>\0');
      peer.send(Command.RCPT, '<b@example.org>\0');
      peer.send(Command.HEADER, 'Subject\0 big\0');
      peer.send(Command.BODY, 'x'.repeat(10_000) + '\r\n');
      for (let i = 0; i < 100 && readdirSync(bodies).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(readdirSync(bodies)).toHaveLength(1);
      daemon.process.kill('SIGHUP');
      await daemon.waitFor((l) => l.event === 'reloaded');
      expect(readdirSync(bodies)).toHaveLength(1);
      peer.send(Command.BODYEOB);
      await peer.replied(2);
      expect(peer.replies).toEqual(['O', 'c']);
      expect(daemon.lines.filter((l) => l.event === 'filter-error')).toEqual([]);
    } finally {
      peer.socket.destroy();
      expect(await d.stop()).toBe(0);
    }
  }, 30_000);

  it('a SIGHUP while a cluster is starting is heard and acted on, never fatal', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'milterkit-hup-start-'));
    const file = join(dir, 'milterkit.json');
    // A plugin slow to build: the primary is still checking it when the signal comes.
    writeFileSync(join(dir, 'slow.mjs'), 'await new Promise((resolve) => setTimeout(resolve, 1500));\nexport default () => ({ name: "slow", check: () => ({ action: "accept" }) });\n');
    writeFileSync(file, JSON.stringify({ listen: 'inet:0@127.0.0.1', workers: 2, threads: 1, statsIntervalSeconds: 0, pipeline: [{ plugin: 'module', path: './slow.mjs' }] }));
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, 'dist/cli/main.js', 'milter', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await new Promise((r) => setTimeout(r, 500));
      child.kill('SIGHUP');
      for (let i = 0; i < 500 && (out.match(/"event":"listening"/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      expect((out.match(/"event":"listening"/g) ?? []).length).toBe(2);
      expect(out).toContain('"event":"reload"');
      expect(out).not.toContain('"fatal"');
    } finally {
      child.kill('SIGTERM');
      expect(await new Promise((resolve) => child.once('exit', resolve))).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 45_000);
});

describe('milterkit milter: a reload that does not finish', () => {
  it('a module that never finishes loading fails the reload at threadStartTimeoutMs; a newer reload replaces it; a stop does not wait for it', async () => {
    const config = (pipeline: unknown[], extra: Record<string, unknown> = {}) => ({ threads: 1, threadStartTimeoutMs: 1500, pipeline, ...extra });
    // A top-level await that never resolves, with a timer that keeps the thread alive.
    const d = await configuredDaemon('milterkit-hung-reload-', config([{ plugin: 'defang' }]), { 'hung.mjs': 'setInterval(() => {}, 1000);\nawait new Promise(() => {});\nexport default () => ({ name: "hung", check: () => ({ action: "accept" }) });\n' });
    const { daemon, port } = d;
    try {
      d.rewrite(config([{ plugin: 'module', path: './hung.mjs' }]));
      daemon.process.kill('SIGHUP');
      expect(await daemon.waitFor((l) => l.event === 'reload-failed')).toMatchObject({ error: 'did not build its plugins within 1500 ms (threadStartTimeoutMs)' });
      // Mail flows on the configuration in force meanwhile and afterwards.
      expect((await sendOverMilter({ port }, 'during')).at(-1)).toBe('c');

      // A newer reload does not wait for a hung one: it replaces it.
      daemon.process.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 300));
      d.rewrite(config([{ plugin: 'defang' }], { threads: 2 }));
      daemon.process.kill('SIGHUP');
      expect(await daemon.waitFor((l) => l.event === 'reloaded', 1200)).toMatchObject({ threads: 2 });
      expect(daemon.lines.filter((l) => l.event === 'reload-failed').map((l) => l.error)).toEqual(['did not build its plugins within 1500 ms (threadStartTimeoutMs)', 'a newer reload came']);

      // A stop while a reload hangs: at once.
      d.rewrite(config([{ plugin: 'module', path: './hung.mjs' }]));
      daemon.process.kill('SIGHUP');
      await new Promise((r) => setTimeout(r, 300));
      const asked = Date.now();
      daemon.process.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
      expect(Date.now() - asked).toBeLessThan(1500);
    } finally {
      await d.stop();
    }
  }, 30_000);

  it('a burst of SIGHUPs makes at most one more reload, and a SIGTERM after it is acted on at once', async () => {
    const d = await configuredDaemon('milterkit-hup-burst-', { threads: 1 });
    const { daemon } = d;
    try {
      for (let i = 0; i < 50; i++) daemon.process.kill('SIGHUP');
      await daemon.waitFor((l) => l.event === 'reloaded');
      const asked = Date.now();
      daemon.process.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
      expect(Date.now() - asked).toBeLessThan(2000);
      // Each of them heard and logged; most of them absorbed by the next.
      expect(daemon.lines.filter((l) => l.event === 'signal' && l.signal === 'SIGHUP').length).toBeGreaterThan(0);
      expect(daemon.lines.filter((l) => l.event === 'reloaded').length).toBeLessThanOrEqual(2);
    } finally {
      await d.stop();
    }
  }, 30_000);
});
