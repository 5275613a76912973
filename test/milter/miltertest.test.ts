import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../support/daemon.js';

// OpenDKIM's miltertest: an MTA-side client written independently of Postfix and of us.
let daemon: Daemon;
beforeAll(async () => {
  daemon = await startDaemon(['--listen', 'inet:0@127.0.0.1']);
});
afterAll(async () => {
  expect(await daemon?.stop()).toBe(0);
});

describe('milterkit milter under miltertest (OpenDKIM)', () => {
  it('passes clean mail untouched, defangs an executable, refuses message/partial', async () => {
    const { port } = daemon.lines.find((l) => l.event === 'listening')?.address as { port: number };
    // Exits 1 (rejecting the promise, with its output) on the first failed check.
    const run = await promisify(execFile)('miltertest', ['-D', `port=${port}`, '-s', 'test/milter/miltertest/daemon.lua'], { encoding: 'utf8', timeout: 30_000 });
    expect(run.stdout).toContain('daemon.lua: PASS');
    await daemon.waitFor(() => daemon.lines.filter((l) => l.event === 'message').length === 3);
    expect(daemon.lines.filter((l) => l.event === 'message').map((l) => l.verdict)).toEqual(['clean', 'changed', 'reject']);
  });
});
