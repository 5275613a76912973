// Callback verifier benchmark: verifications per second with 1,000 distinct addresses at concurrency 50,
// cold (every address asked) and cached; the cost of a cached lookup; memory per cached entry. Two servers:
// a real Postfix on loopback (what a verifier meets) and a minimal responder in its own process (the
// lightest server there is, which exposes the client's own cost). The ceiling for each is the server's rate
// under a bare client doing the same dialogue and nothing else.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startPostfix } from '../test/support/postfix.js';
import { MemoryVerificationCache, verifyAddress, type VerifyOptions } from '../src/index.js';
import type { Area, BenchOptions } from './lib/area.js';
import { printTable } from './lib/table.js';
import { median } from './lib/timing.js';

const RESPONDER = fileURLToPath(new URL('lib/smtp-responder.ts', import.meta.url));
const CONCURRENCY = 50;
const TARGET_CACHED_MICROSECONDS = 20;
/** Cold ours / ceiling at or above this: the server, not the verifier, sets the pace. */
const TARGET_SHARE_OF_CEILING = 0.9;
/** Probes run before any timing, so that both clients (and the server) are compiled and warm. */
const WARM_UP = 2000;

interface Server {
  name: string;
  port: number;
  /** Processes to pin to the server's core. */
  pids(): number[];
  stop(): Promise<void>;
}

/**
 * The server gets the last core and this process the first, as if they were two machines: on a shared
 * core, every microsecond the client spends is taken from the server, and "limited by the server" could not
 * be told from "limited by the CPU". Children forked later (Postfix's smtpd) inherit their parent's core.
 */
function pin(pids: readonly number[], cpu: string): boolean {
  return pids.every((pid) => spawnSync('taskset', ['-a', '-p', '-c', cpu, String(pid)], { stdio: 'ignore' }).status === 0);
}

function processGroup(pgid: number): number[] {
  const ps = spawnSync('ps', ['-o', 'pid=', '-g', String(pgid)], { encoding: 'utf8' });
  return ps.stdout.split(/\s+/).filter(Boolean).map(Number);
}

async function startResponder(): Promise<Server> {
  const child = spawn(process.execPath, [...process.execArgv, RESPONDER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  return { name: 'minimal responder', port, pids: () => [child.pid as number], stop: async () => void child.kill() };
}

async function startRealPostfix(): Promise<Server | undefined> {
  if (process.getuid?.() !== 0 || spawnSync('/usr/sbin/postfix', ['-h'], { stdio: 'ignore' }).error) return undefined;
  const postfix = await startPostfix({ users: ['bench'], domain: 'bench.test' });
  const master = Number(readFileSync(join(postfix.dir, 'queue', 'pid', 'master.pid'), 'utf8').trim());
  return { name: 'Postfix', port: postfix.port, pids: () => processGroup(master), stop: () => postfix.stop() };
}

/**
 * The verifier's dialogue with nothing else: EHLO, MAIL and RCPT in one write (PIPELINING), QUIT without
 * waiting for its answer. Every reply is complete at a line "NNN text".
 */
function bareProbe(port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    let replies = 0;
    let buffer = '';
    socket.on('error', reject);
    socket.on('close', () => resolve());
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let eol = buffer.indexOf('\n'); eol >= 0; eol = buffer.indexOf('\n')) {
        const last = buffer[3] === ' ';
        buffer = buffer.slice(eol + 1);
        if (!last) continue;
        replies++;
        if (replies === 1) socket.write('EHLO bench.client\r\n');
        else if (replies === 2) socket.write(`MAIL FROM:<>\r\nRCPT TO:<${address}>\r\n`);
        else if (replies === 4) socket.end('QUIT\r\n', () => socket.destroy());
      }
    });
  });
}

async function atConcurrency<T>(items: readonly T[], work: (item: T) => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Rate (per second) and this process's CPU per item (microseconds) of one timed run. */
async function timedRun<T>(items: readonly T[], work: (item: T) => Promise<unknown>): Promise<{ rate: number; cpu: number }> {
  const before = process.cpuUsage();
  const seconds = await atConcurrency(items, work);
  const used = process.cpuUsage(before);
  return { rate: items.length / seconds, cpu: (used.user + used.system) / items.length };
}

interface ColdFigures {
  ceiling: number;
  bareCpu: number;
  cold: number;
  ourCpu: number;
}

/** Bare client and verifier alternately, each on fresh distinct addresses; medians of `rounds`. */
async function coldRates(server: Server, count: number, rounds: number, base: VerifyOptions): Promise<ColdFigures> {
  const addresses = (tag: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${tag}${i}@bench.test`);
  const options = { ...base, port: server.port };
  await atConcurrency(addresses('warm-bare', WARM_UP), (a) => bareProbe(server.port, a));
  await atConcurrency(addresses('warm-ours', WARM_UP), (a) => verifyAddress(a, { ...options, cache: false }));
  const bare: { rate: number; cpu: number }[] = [];
  const ours: { rate: number; cpu: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    bare.push(await timedRun(addresses(`bare${round}-`, count), (a) => bareProbe(server.port, a)));
    const cache = new MemoryVerificationCache();
    ours.push(await timedRun(addresses(`ours${round}-`, count), (a) => verifyAddress(a, { ...options, cache })));
  }
  return {
    ceiling: median(bare.map((r) => r.rate)),
    bareCpu: median(bare.map((r) => r.cpu)),
    cold: median(ours.map((r) => r.rate)),
    ourCpu: median(ours.map((r) => r.cpu)),
  };
}

async function run(options: BenchOptions): Promise<void> {
  const count = options.quick ? 200 : 1000;
  const rounds = options.quick ? 1 : 3;
  const resolver = {
    resolveMx: async () => [{ exchange: 'mx.bench.test', priority: 10 }],
    resolve4: async () => ['127.0.0.1'],
    resolve6: async (): Promise<string[]> => [],
  };
  const base: VerifyOptions = { resolver, allowLoopback: true, heloName: 'bench.client', maxConcurrentPerDomain: CONCURRENCY, maxSessionsPerMinutePerDomain: 1e9 };
  const coldRows: string[][] = [];
  const postfix = await startRealPostfix();
  if (!postfix) console.log('\ncbv: Postfix rows need root and Postfix (`apt-get install postfix`); skipped.');
  const responder = await startResponder();
  const cpus = availableParallelism();
  const pinned = cpus >= 2 && pin([process.pid], '0') && [postfix, responder].every((server) => !server || pin(server.pids(), String(cpus - 1)));
  let cachedMicroseconds = 0;
  let perEntry = 0;
  try {
    for (const server of [postfix, responder]) {
      if (!server) continue;
      process.stderr.write(`cbv: ${server.name}\n`);
      const f = await coldRates(server, count, rounds, base);
      const share = f.cold / f.ceiling;
      coldRows.push([server.name, `${f.ceiling.toFixed(0)}/s (${f.bareCpu.toFixed(0)} µs)`, `${f.cold.toFixed(0)}/s (${f.ourCpu.toFixed(0)} µs)`, `${(share * 100).toFixed(0)}%`, share >= TARGET_SHARE_OF_CEILING ? 'server-bound' : 'client-bound']);
    }
    const addresses = Array.from({ length: count }, (_, i) => `user${i}@bench.test`);
    const cache = new MemoryVerificationCache();
    const cachedOptions = { ...base, port: responder.port, cache };
    await atConcurrency(addresses, (a) => verifyAddress(a, cachedOptions));
    const lookups = options.quick ? 20_000 : 200_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < lookups; i++) await verifyAddress(addresses[i % count] as string, cachedOptions);
    cachedMicroseconds = Number(process.hrtime.bigint() - started) / 1e3 / lookups;

    const big = new MemoryVerificationCache();
    const sample = await verifyAddress(addresses[0] as string, cachedOptions);
    globalThis.gc?.();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 50_000; i++) await big.set(`user${i}@memory.test`, { ...sample, address: `user${i}@memory.test`, transcript: [...sample.transcript] }, 60_000);
    globalThis.gc?.();
    perEntry = (process.memoryUsage().heapUsed - before) / big.size;
  } finally {
    if (pinned) pin([process.pid], `0-${cpus - 1}`);
    await responder.stop();
    await postfix?.stop();
  }
  console.log(`\n## cbv: ${count} distinct addresses at concurrency ${CONCURRENCY}, cold, median of ${rounds} rounds after ${WARM_UP} untimed probes each\n`);
  console.log(`Ceiling: the same dialogue by a bare client that does nothing else. In brackets: client CPU per probe. ${pinned ? 'Server and client on cores of their own.' : 'Server and client share the cores (no taskset, or one core): the client\'s CPU is taken from the server.'}\n`);
  printTable(['server', 'ceiling (bare client)', 'verifyAddress cold', 'share', `target >= ${TARGET_SHARE_OF_CEILING * 100}%`], coldRows);
  console.log('');
  printTable(
    ['case', 'figure'],
    [
      ['verifyAddress, cached', `${cachedMicroseconds.toFixed(2)} µs per lookup (target < ${TARGET_CACHED_MICROSECONDS}: ${cachedMicroseconds < TARGET_CACHED_MICROSECONDS ? 'ok' : 'MISSED'})`],
      ['memory per cached entry (with its transcript)', `${(perEntry / 1024).toFixed(2)} KiB`],
    ],
  );
}

export const cbvArea: Area = { name: 'cbv', run, measure: async () => undefined };
