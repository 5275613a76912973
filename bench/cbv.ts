// Callback verifier benchmark: verifications per second against a local SMTP responder (its own process)
// with 1,000 distinct addresses at concurrency 50, cold (every address asked) and cached; the cost of a
// cached lookup; memory per cached entry. The ceiling is the responder's own rate for the same dialogue,
// driven by a bare client that does nothing else.
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { MemoryVerificationCache, verifyAddress, type VerifyOptions } from '../src/index.js';
import type { Area, BenchOptions } from './lib/area.js';
import { printTable } from './lib/table.js';

const RESPONDER = fileURLToPath(new URL('lib/smtp-responder.ts', import.meta.url));
const CONCURRENCY = 50;
// The client and the responder share the machine's cores: on a 2-core box the client's own work takes CPU
// from the responder, which is why the bare client (doing nothing else) sets the ceiling.
const TARGET_CACHED_MICROSECONDS = 20;

async function startResponder(): Promise<{ port: number; stop: () => void }> {
  const child = spawn(process.execPath, [...process.execArgv, RESPONDER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
  return { port, stop: () => child.kill() };
}

/** The same dialogue as a probe, with nothing else: the most the responder can do. */
function bareProbe(port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    const script = ['EHLO bench.client', 'MAIL FROM:<>', `RCPT TO:<${address}>`, 'QUIT'];
    let step = 0;
    let buffer = '';
    socket.on('error', reject);
    socket.on('close', () => resolve());
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      // One reply is complete at a line "NNN text"; multi-line EHLO ends with "250 ".
      while (/^\d{3} [^\n]*\n/m.test(buffer)) {
        buffer = buffer.replace(/^(?:\d{3}-[^\n]*\n)*\d{3} [^\n]*\n/, '');
        const line = script[step++];
        if (line) socket.write(`${line}\r\n`);
      }
    });
  });
}

async function atConcurrency<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
  return Number(process.hrtime.bigint() - started) / 1e9;
}

async function run(options: BenchOptions): Promise<void> {
  const count = options.quick ? 200 : 1000;
  const responder = await startResponder();
  try {
    const resolver = {
      resolveMx: async () => [{ exchange: 'mx.bench.test', priority: 10 }],
      resolve4: async () => ['127.0.0.1'],
      resolve6: async (): Promise<string[]> => [],
    };
    const addresses = Array.from({ length: count }, (_, i) => `user${i}@bench.test`);
    const base: VerifyOptions = { resolver, port: responder.port, allowLoopback: true, heloName: 'bench.client', maxConcurrentPerDomain: CONCURRENCY, maxSessionsPerMinutePerDomain: 1e9 };
    await atConcurrency(addresses.slice(0, 50), CONCURRENCY, (a) => bareProbe(responder.port, a)); // warm-up
    const ceiling = count / (await atConcurrency(addresses, CONCURRENCY, (a) => bareProbe(responder.port, a)));
    const cache = new MemoryVerificationCache();
    await atConcurrency(addresses.slice(0, 50), CONCURRENCY, (a) => verifyAddress(`w-${a}`, { ...base, cache: false })); // warm-up
    const coldSeconds = await atConcurrency(addresses, CONCURRENCY, (a) => verifyAddress(a, { ...base, cache }));
    const cold = count / coldSeconds;
    const lookups = options.quick ? 20_000 : 200_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < lookups; i++) await verifyAddress(addresses[i % count] as string, { ...base, cache });
    const cachedMicroseconds = Number(process.hrtime.bigint() - started) / 1e3 / lookups;

    const big = new MemoryVerificationCache();
    const sample = await verifyAddress(addresses[0] as string, { ...base, cache });
    globalThis.gc?.();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 50_000; i++) await big.set(`user${i}@memory.test`, { ...sample, address: `user${i}@memory.test`, transcript: [...sample.transcript] }, 60_000);
    globalThis.gc?.();
    const perEntry = (process.memoryUsage().heapUsed - before) / big.size;

    console.log(`\n## cbv: ${count} distinct addresses at concurrency ${CONCURRENCY} against a local SMTP responder (own process)\n`);
    printTable(
      ['case', 'figure'],
      [
        ['responder ceiling (bare client, same dialogue)', `${ceiling.toFixed(0)} probes/s`],
        ['verifyAddress, cold (every address probed)', `${cold.toFixed(0)} verifications/s (${((cold / ceiling) * 100).toFixed(0)}% of the ceiling)`],
        ['verifyAddress, cached', `${cachedMicroseconds.toFixed(2)} µs per lookup (target < ${TARGET_CACHED_MICROSECONDS}: ${cachedMicroseconds < TARGET_CACHED_MICROSECONDS ? 'ok' : 'MISSED'})`],
        ['memory per cached entry (with its transcript)', `${(perEntry / 1024).toFixed(2)} KiB`],
      ],
    );
  } finally {
    responder.stop();
  }
}

export const cbvArea: Area = { name: 'cbv', run, measure: async () => undefined };
