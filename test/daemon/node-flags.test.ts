import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS, missingNodeFlags } from '../../src/daemon/node-flags.js';
import { startDaemon } from '../support/daemon.js';

/** The arguments a running process was started with. */
const commandLine = (pid: unknown): string[] => readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8').split('\0').filter(Boolean);
const listeningPids = (lines: Record<string, unknown>[]): unknown[] => lines.filter((l) => l.event === 'listening').map((l) => l.pid);

describe("the daemon's V8 flags", () => {
  it('npm start and the milterkit command (its shebang) pass the same flags', async () => {
    const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${DAEMON_NODE_FLAGS.join(' ')} dist/cli/main.js milter`);
    expect(readFileSync('src/cli/main.ts', 'utf8').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${DAEMON_NODE_FLAGS.join(' ')}`);

    const daemon = await startDaemon(['--listen', 'inet:0@127.0.0.1'], { viaShebang: true });
    try {
      expect(commandLine(listeningPids(daemon.lines)[0])).toEqual(expect.arrayContaining([...DAEMON_NODE_FLAGS]));
      expect(daemon.lines.some((l) => l.event === 'notice')).toBe(false);
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });

  it("counts an option given with another value, or in NODE_OPTIONS, as the operator's choice", () => {
    expect(missingNodeFlags([], '')).toEqual([...DAEMON_NODE_FLAGS]);
    expect(missingNodeFlags(['--max-semi-space-size=8'], '')).toEqual(['--initial-old-space-size=64']);
    expect(missingNodeFlags(['--initial-old-space-size=256'], '--max-semi-space-size=2 --enable-source-maps')).toEqual([]);
    expect(missingNodeFlags(['--initial-old-space-size=16'], '')).toEqual(['--max-semi-space-size=4']);
  });

  it('cluster workers get them from a primary started without; a single process started without says so', async () => {
    const clustered = await startDaemon(['--listen', 'inet:0@127.0.0.1', '--workers', '2'], { nodeFlags: [], workers: 2 });
    try {
      const pids = listeningPids(clustered.lines);
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(commandLine(pid)).toEqual(expect.arrayContaining([...DAEMON_NODE_FLAGS]));
    } finally {
      expect(await clustered.stop()).toBe(0);
    }
    const single = await startDaemon(['--listen', 'inet:0@127.0.0.1'], { nodeFlags: [] });
    try {
      const notice = single.lines.find((l) => l.event === 'notice')?.message;
      for (const flag of DAEMON_NODE_FLAGS) expect(notice).toContain(flag);
    } finally {
      expect(await single.stop()).toBe(0);
    }
  });
});
