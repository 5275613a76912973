import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildPipeline, FilterError, messageFilter, parseMessage, pipeline, runMilter, validateConfig, type MilterPlugin } from '../../src/index.js';
import { checkConfig, DEFAULT_CONFIG } from '../../src/daemon/config.js';

const input = { message: Buffer.from('From: a@example.com\r\nSubject: hi\r\n\r\nText.\r\n'), sender: 'a@example.com', recipients: ['b@example.org'] };

/** A plugin that records that it ran and does what it is told. */
function step(name: string, result: Awaited<ReturnType<MilterPlugin['check']>>, ran: string[]): MilterPlugin {
  return {
    name,
    check(message) {
      ran.push(name);
      message.headers.add(`X-${name}`, 'ran');
      return result;
    },
  };
}

describe('pipeline', () => {
  it('runs plugins in order; the first reject ends it, later plugins do not run', async () => {
    const ran: string[] = [];
    const logged: Record<string, unknown>[] = [];
    const result = await runMilter(messageFilter(pipeline([step('a', { action: 'accept', changed: true, log: { a: 1 } }, ran), step('b', { action: 'reject', reply: '550 5.7.1 b says no', log: { b: 2 } }, ran), step('c', { action: 'accept' }, ran)], (f) => logged.push(f))), input);
    expect(ran).toEqual(['a', 'b']);
    expect(result).toMatchObject({ verdict: 'reject', reply: '550 5.7.1 b says no' });
    expect(logged).toEqual([expect.objectContaining({ verdict: 'reject', a: 1, b: 2, sender: '<a@example.com>' })]);
  });

  it('keeps the first quarantine reason and still runs the rest, applying their changes', async () => {
    const ran: string[] = [];
    const logged: Record<string, unknown>[] = [];
    const result = await runMilter(messageFilter(pipeline([step('a', { action: 'quarantine', reason: 'first' }, ran), step('b', { action: 'quarantine', reason: 'second' }, ran), step('c', { action: 'accept' }, ran)], (f) => logged.push(f))), input);
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(result.quarantine).toBe('first');
    expect(parseMessage(result.delivered ?? Buffer.alloc(0)).headers.get('x-c')).toBe('ran');
    expect(logged[0]?.verdict).toBe('quarantine');
  });

  it('a plugin that throws gives the fallback (tempfail), never a pass', async () => {
    const broken: MilterPlugin = { name: 'broken', check: () => { throw new Error('bug in plugin'); } };
    const result = await runMilter(messageFilter(pipeline([broken], () => {})), input);
    expect(result.verdict).toBe('tempfail');
    expect(result.log).toContainEqual(expect.objectContaining({ event: 'filter-error', plugin: 'broken', error: 'plugin broken: check failed: bug in plugin', fallback: 'tempfail' }));
  });
});

describe('pipeline: plugin answers are checked at run time (plugins are plain JavaScript)', () => {
  const answering = (answer: unknown): MilterPlugin => ({ name: 'odd', check: () => answer as never });
  it.each([
    [{ action: 'Reject' }, 'returned an unknown action "Reject" (accept, quarantine, reject, tempfail or discard)'],
    ['reject', 'returned "reject", not { action, ... }'],
    [null, 'returned null, not { action, ... }'],
    [{ action: 'reject', reply: '250 ok' }, 'reply "250 ok" is not an SMTP reply ("550 5.7.1 text", "450 4.7.1 text")'],
    [{ action: 'tempfail', reply: '550 5.7.1 no' }, 'action "tempfail" with a 5xx reply "550 5.7.1 no": a reject takes 5xx, a tempfail 4xx'],
    [{ action: 'accept', log: 'defang' }, 'log must be an object of fields, got "defang"'],
    [{ action: 'quarantine', reason: 42 }, "a quarantine's reason must be a non-empty string, got 42"],
  ])('%j is an error of the plugin: the fallback, never an accept', async (answer, error) => {
    const result = await runMilter(messageFilter(pipeline([answering(answer), step('after', { action: 'accept' }, [])], () => {})), input);
    expect(result.verdict).toBe('tempfail');
    expect(result.log).toEqual([expect.objectContaining({ event: 'filter-error', plugin: 'odd', error: `plugin odd: bad answer: ${error}` })]);
  });

  it('a quarantine without a reason is held, with the plugin named; a good answer is taken as it is', async () => {
    expect((await runMilter(messageFilter(pipeline([answering({ action: 'quarantine' })], () => {})), input)).quarantine).toBe('held by plugin odd');
    const refused = await runMilter(messageFilter(pipeline([answering({ action: 'reject', reply: '554-5.7.1 first\r\n554 5.7.1 second' })], () => {})), input);
    expect(refused).toMatchObject({ verdict: 'reject', reply: '554-5.7.1 first\r\n554 5.7.1 second' });
  });

  it('a FilterError a plugin throws itself keeps its fields, but cannot rename the plugin, the stage or the line\'s facts', async () => {
    const sly: MilterPlugin = { name: 'sly', check: () => { throw new FilterError('my own words', { plugin: 'someone-else', stage: 'connect', detail: 42, event: 'message', verdict: 'clean', queueId: 'forged', time: '1970-01-01' }); } };
    const result = await runMilter(messageFilter(pipeline([sly], () => {})), input);
    expect(result.verdict).toBe('tempfail');
    expect(result.log).toEqual([{ event: 'filter-error', stage: 'eom', plugin: 'sly', detail: 42, queueId: undefined, messageId: undefined, error: 'plugin sly: check failed: my own words', fallback: 'tempfail' }]);
  });

  it('a FilterError with no fields at all (plain JavaScript can pass null) is named like any other failure', async () => {
    const bare: MilterPlugin = { name: 'bare', begin: () => { throw new FilterError('in begin', null as never); }, check: () => { throw new FilterError('in check', null as never); } };
    const result = await runMilter(messageFilter(pipeline([bare], () => {})), input);
    expect(result.verdict).toBe('tempfail');
    expect(result.log).toEqual([expect.objectContaining({ event: 'filter-error', plugin: 'bare', error: 'plugin bare: begin failed: in begin' })]);
  });

  it('a begin that fails while a later plugin is waited for fails the message at once, not when that plugin is done', async () => {
    const plugins: MilterPlugin[] = [
      { name: 'a', begin: () => new Promise((_, reject) => setTimeout(() => reject(new Error('probe broke')), 200)), check: async () => ({ action: 'accept' }) },
      { name: 'b', check: (_message, _envelope, state) => new Promise((resolve) => { const timer = setTimeout(() => resolve({ action: 'accept' }), 2000); state.signal.addEventListener('abort', () => clearTimeout(timer)); }) },
    ];
    const started = Date.now();
    const result = await runMilter(messageFilter(pipeline(plugins, () => {})), input);
    expect(result.verdict).toBe('tempfail');
    expect(result.log).toEqual([expect.objectContaining({ plugin: 'a', error: 'plugin a: begin failed: probe broke' })]);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('a begin that fails while the end of message runs still fails it', async () => {
    const late: MilterPlugin = {
      name: 'late',
      begin: () => new Promise((_, reject) => setTimeout(() => reject(new Error('the probe broke')), 50)),
      check: () => new Promise((resolve) => setTimeout(() => resolve({ action: 'accept' }), 150)),
    };
    const result = await runMilter(messageFilter(pipeline([late], () => {})), input);
    expect(result.verdict).toBe('tempfail');
    expect(result.log).toEqual([expect.objectContaining({ event: 'filter-error', plugin: 'late', error: 'plugin late: begin failed: the probe broke' })]);
    // Nor can one that fails between two plugins' turns slip through.
    const quick: MilterPlugin = { name: 'quick', begin: () => Promise.reject(new Error('at once')), check: () => ({ action: 'accept' }) };
    expect((await runMilter(messageFilter(pipeline([quick], () => {})), input)).verdict).toBe('tempfail');
  });

  it('a recipient check of the wrong shape tempfails that recipient, never lets it through', async () => {
    const odd: MilterPlugin = { name: 'odd', check: () => ({ action: 'accept' }), recipient: () => ({ action: 'refuse' }) as never };
    const result = await runMilter(messageFilter(pipeline([odd], () => {})), { ...input, recipients: ['b@example.org'] });
    expect(result).toMatchObject({ verdict: 'reject', stage: 'envRcpt', recipients: [] });
    expect(result.log).toEqual([expect.objectContaining({ event: 'filter-error', stage: 'envRcpt', plugin: 'odd', recipient: '<b@example.org>' })]);
  });
});

describe('start-up failures', () => {
  /** Runs `milterkit milter` with `args(port)` while a loopback port is taken; returns how it ended. */
  async function withPortTaken(args: (port: number) => string[]): Promise<SpawnSyncReturns<string>> {
    const { createServer } = await import('node:net');
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    try {
      return spawnSync(process.execPath, ['dist/cli/main.js', 'milter', ...args(port)], { encoding: 'utf8', timeout: 20_000 });
    } finally {
      taken.close();
    }
  }

  it('a cluster whose workers cannot listen stops with exit code 2, instead of living on with nobody listening', async () => {
    const run = await withPortTaken((port) => ['--workers', '2', '--listen', `inet:${port}@127.0.0.1`]);
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('EADDRINUSE');
  });

  it('a health address in use stops the daemon with exit code 2 before it takes mail, one process or a cluster (it does not linger)', async () => {
    for (const workers of ['1', '2']) {
      const run = await withPortTaken((port) => ['--workers', workers, '--listen', 'inet:0@127.0.0.1', '--health', `127.0.0.1:${port}`]);
      expect(run.status).toBe(2);
      expect(run.stderr).toContain('EADDRINUSE');
      expect(run.stdout).not.toContain('"listening"');
    }
  });
});

describe('config', () => {
  it('refuses unknown keys, wrong types and unknown plugins, naming the place', () => {
    expect(() => validateConfig({ listen: 'inet:8890@127.0.0.1', workerz: 2 }, 'milterkit.json')).toThrow('milterkit.json: unknown key "workerz"');
    expect(() => validateConfig({ workers: 0 })).toThrow('workers must be an integer from 1 to 1024');
    // Limits where 0 would break the daemon rather than mean "never".
    expect(() => validateConfig({ hookTimeoutMs: 0 })).toThrow('hookTimeoutMs must be an integer from 1 to 2147483647');
    expect(() => validateConfig({ eomTimeoutMs: 0 })).toThrow('eomTimeoutMs must be an integer from 1 to 2147483647');
    expect(() => validateConfig({ maxPacketSize: 4096 })).toThrow('maxPacketSize must be an integer from 65536 to 1073741824');
    expect(() => validateConfig({ maxConnections: 0 })).toThrow('maxConnections must be an integer from 1 to 2147483647');
    expect(() => validateConfig({ oversizeAction: 'drop' })).toThrow('oversizeAction must be reject or accept');
    expect(() => validateConfig({ progressIntervalMs: -1 })).toThrow('progressIntervalMs must be an integer from 0 to 2147483647');
    // And where too much would not mean what it says: node runs a timer over 2^31 - 1 ms after 1 ms; a
    // body is read back whole, under node's 2 GiB file read.
    expect(() => validateConfig({ progressIntervalMs: 3e9 })).toThrow('progressIntervalMs must be an integer from 0 to 2147483647');
    expect(() => validateConfig({ maxMessageBytes: 3 * 2 ** 30 })).toThrow('maxMessageBytes must be an integer from 1 to 1073741824');
    expect(() => validateConfig({ pipeline: [{ plugin: 'cbv', rcptWaitMs: 'abc' }] })).toThrow('pipeline[0]: rcptWaitMs must be an integer from 1 to 2147483647');
    // Settings against each other, once merged.
    expect(() => checkConfig({ ...DEFAULT_CONFIG, idleTimeoutMs: 60_000 })).toThrow('idleTimeoutMs (60000) must be 0 or more than hookTimeoutMs and eomTimeoutMs (250000)');
    expect(() => checkConfig({ ...DEFAULT_CONFIG, pipeline: [{ plugin: 'cbv', refuseAtRcpt: true, rcptWaitMs: 30_000 }] })).toThrow("the cbv plugin's rcptWaitMs (30000) must be less than hookTimeoutMs (25000)");
    expect(() => checkConfig({ ...DEFAULT_CONFIG, idleTimeoutMs: 0, pipeline: [{ plugin: 'cbv', refuseAtRcpt: true }] })).not.toThrow();
    expect(validateConfig({ progressIntervalMs: 0, idleTimeoutMs: 0, memoryThresholdBytes: 0 })).toEqual({ progressIntervalMs: 0, idleTimeoutMs: 0, memoryThresholdBytes: 0 });
    expect(() => validateConfig({ listen: 'tcp:25' })).toThrow(/expected inet:PORT@HOST/);
    expect(() => validateConfig({ pipeline: [{ plugin: 'spamassassin' }] })).toThrow('config: pipeline[0]: plugin must be "defang", "cbv", "notify" or "module"');
    expect(() => validateConfig({ pipeline: [{ plugin: 'cbv', rejectInvalids: true }] })).toThrow('pipeline[0]: unknown key "rejectInvalids"');
    expect(() => validateConfig({ pipeline: [{ plugin: 'cbv', cache: 'memcached://localhost' }] })).toThrow('pipeline[0]: cache must be false or a redis:// or rediss:// URL');
    expect(() => validateConfig({ pipeline: [{ plugin: 'cbv', cache: true }] })).toThrow('cache must be false');
    expect(() => validateConfig({ pipeline: [{ plugin: 'defang', policy: { actions: { 'banned-extension': 'explode' } } }] })).toThrow(/pipeline\[0\]\.policy/);
    expect(validateConfig({ workers: 4, pipeline: [{ plugin: 'defang' }, { plugin: 'cbv', rejectInvalid: true }] })).toEqual({ workers: 4, pipeline: [{ plugin: 'defang' }, { plugin: 'cbv', rejectInvalid: true }] });
  });

  it('a module that is not a plugin stops the daemon at start, with the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'milterkit-config-'));
    try {
      writeFileSync(join(dir, 'not-a-plugin.mjs'), 'export default () => ({ name: "x" });\n');
      await expect(buildPipeline([{ plugin: 'module', path: './not-a-plugin.mjs' }], dir)).rejects.toThrow('the factory must return { name, check(message, envelope) }');
      writeFileSync(join(dir, 'milterkit.json'), JSON.stringify({ pipeline: [{ plugin: 'module', path: './not-a-plugin.mjs' }] }));
      const run = spawnSync(process.execPath, ['dist/cli/main.js', 'milter', '--config', join(dir, 'milterkit.json')], { encoding: 'utf8', timeout: 10_000 });
      expect(run.status).toBe(2);
      expect(run.stderr).toContain('not-a-plugin.mjs: the factory must return');
      // With workers, the primary builds the plugins once (in a thread) before forking any.
      const clustered = spawnSync(process.execPath, ['dist/cli/main.js', 'milter', '--workers', '2', '--config', join(dir, 'milterkit.json')], { encoding: 'utf8', timeout: 10_000 });
      expect(clustered.status).toBe(2);
      expect(clustered.stderr).toContain('not-a-plugin.mjs: the factory must return');
      writeFileSync(join(dir, 'broken.json'), '{ "workers": 2, }');
      const broken = spawnSync(process.execPath, ['dist/cli/main.js', 'milter', '--config', join(dir, 'broken.json')], { encoding: 'utf8', timeout: 10_000 });
      expect(broken.status).toBe(2);
      expect(broken.stderr).toContain('broken.json');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
