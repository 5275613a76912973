// Daemon benchmark: messages per second through a real Postfix on loopback, smtp-source -> Postfix ->
// smtp-sink, at concurrency 10, for 2 KB, 100 KB and 1 MB messages, over a unix socket and over TCP:
// no milter (the ceiling), milterkit's daemon (the whole defang engine plus a header on every message),
// the same daemon with a pipeline that does nothing (over the unix socket: what the protocol engine,
// buffering and parsing alone cost), the daemon's work with its pipeline in the connection loop (`one
// thread`, bench/lib/one-thread-milter.ts: what handing messages to pipeline threads costs), a node floor (bench/lib/node-floor-milter.ts: the least a node
// milter can do, over the unix socket) and a pymilter milter doing less than the first (parse, check
// attachment names, add a header: bench/pymilter-milter.py). Every setup runs side by side and the
// rounds alternate between them, so that a shared machine's drift does not favour one. Each milter's
// added cost per message is 1/rate - 1/ceiling. The same comparison in CPU time: the whole machine's
// per message (on a machine whose cores are all busy, what the rate follows) and the milter process's
// own. Also the daemon's memory over 10,000 messages.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, chmodSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../test/support/free-port.js';
import { startPostfix, type PostfixInstance } from '../test/support/postfix.js';
import type { Area, BenchOptions } from './lib/area.js';
import { printTable } from './lib/table.js';
import { median } from './lib/timing.js';
import { DAEMON_NODE_FLAGS } from '../src/daemon/node-flags.js';

const SMTP_SOURCE = '/usr/sbin/smtp-source';
const SMTP_SINK = '/usr/sbin/smtp-sink';
const PYTHON = '/usr/bin/python3';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CONCURRENCY = 10;
const SIZES = [2048, 102_400, 1_048_576];
const COUNTS: Record<number, number> = { 2048: 2000, 102_400: 1000, 1_048_576: 200 };
const MEMORY_MESSAGES = 10_000;
const WARM_UP_MESSAGES = 3000;

type Mode = 'ceiling' | 'milterkit' | 'one thread' | 'empty pipeline' | 'node floor' | 'pymilter';
type Transport = 'unix' | 'tcp';

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`bench milter: timed out waiting for ${what}`);
    await sleep(50);
  }
}

function connectable(target: { path: string } | { port: number }): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = 'path' in target ? connect(target.path) : connect(target.port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

interface Milter {
  spec: string;
  pid: number;
  stop(): Promise<void>;
}

async function startMilter(mode: Exclude<Mode, 'ceiling'>, transport: Transport, dir: string): Promise<Milter> {
  const port = await freePort();
  const path = join(dir, 'milter.sock');
  const listen = transport === 'unix' ? `unix:${path}` : `inet:${port}@127.0.0.1`;
  let child: ChildProcess;
  if (mode === 'milterkit' || mode === 'empty pipeline') {
    const config = join(dir, 'milterkit.json');
    const pipeline = mode === 'milterkit' ? [{ plugin: 'defang' }, { plugin: 'module', path: join(ROOT, 'bench/lib/bench-header-plugin.mjs') }] : [{ plugin: 'module', path: join(ROOT, 'bench/lib/bench-noop-plugin.mjs') }];
    writeFileSync(config, JSON.stringify({ listen, socketMode: '666', statsIntervalSeconds: 0, pipeline }));
    // As `npm start` and the milterkit command run it: with the daemon's V8 flags.
    child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, join(ROOT, 'dist/cli/main.js'), 'milter', '--config', config], { stdio: 'ignore' });
  } else if (mode === 'node floor' || mode === 'one thread') {
    const script = mode === 'node floor' ? 'bench/lib/node-floor-milter.ts' : 'bench/lib/one-thread-milter.ts';
    child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, '--import', 'tsx', join(ROOT, script), listen], { stdio: 'ignore', cwd: ROOT });
  } else child = spawn(PYTHON, [join(ROOT, 'bench/pymilter-milter.py'), listen], { stdio: 'ignore' });
  await until(() => connectable(transport === 'unix' ? { path } : { port }), `${mode} to listen`);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    spec: transport === 'unix' ? `unix:${path}` : `inet:127.0.0.1:${port}`,
    pid: child.pid as number,
    async stop() {
      child.kill('SIGTERM');
      // libmilter looks at signals every few seconds: do not wait for it forever.
      await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
    },
  };
}

function queueEmpty(postfix: PostfixInstance): boolean {
  return ['incoming', 'active', 'deferred', 'maildrop', 'hold'].every((d) => {
    try {
      return readdirSync(join(postfix.dir, 'queue', d), { recursive: true }).every((f) => !/^[0-9A-F]{6,}/.test(String(f).split('/').pop() ?? ''));
    } catch {
      return true;
    }
  });
}

/** smtp-source sends `count` messages of `size` body bytes over CONCURRENCY sessions; returns seconds until the last 250. */
async function send(postfix: PostfixInstance, count: number, size: number): Promise<number> {
  const started = process.hrtime.bigint();
  const child = spawn(SMTP_SOURCE, ['-s', String(CONCURRENCY), '-m', String(count), '-l', String(size), '-M', 'client.bench.test', '-f', 'bench@example.test', '-t', `bench@${postfix.domain}`, `127.0.0.1:${postfix.port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`smtp-source failed (${code}): ${stderr.slice(-500)}`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

interface Setup {
  postfix: PostfixInstance;
  milter: Milter | undefined;
  stop(): Promise<void>;
}

async function setUp(mode: Mode, transport: Transport, sinkPort: number): Promise<Setup> {
  const dir = mkdtempSync('/tmp/milterkit-bench-');
  chmodSync(dir, 0o755);
  const milter = mode === 'ceiling' ? undefined : await startMilter(mode, transport, dir);
  const postfix = await startPostfix({
    users: ['bench'],
    milter: milter?.spec,
    extraMainCf: { virtual_transport: `smtp:[127.0.0.1]:${sinkPort}`, message_size_limit: String(32 << 20), smtp_tls_security_level: 'none' },
  });
  // Warm-up: Postfix's processes started, and a JIT-compiled milter at its steady state (a daemon runs for
  // months; its first few thousand messages also pay for compiling its code).
  await send(postfix, WARM_UP_MESSAGES, 2048);
  await until(() => queueEmpty(postfix), 'the queue to drain', 60_000);
  return {
    postfix,
    milter,
    async stop() {
      await postfix.stop();
      await milter?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** CPU seconds (user + system, all threads) a process has used so far. */
function cpuSeconds(pid: number): number {
  // "pid (comm) state ppid ..." : utime and stime are fields 14 and 15, counted after the last ')'.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * CPU seconds the whole machine has been busy so far, every core: Postfix, smtp-source, smtp-sink, the
 * milter and the kernel's work for them all. /proc/stat's first line: user, nice, system, idle, iowait,
 * irq, softirq, then steal (another guest's time) and guest times (already in user): left out.
 */
function machineBusySeconds(): number {
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq) / 100;
}

interface Run {
  rate: number;
  /** The milter's own CPU milliseconds per message. */
  cpuMs: number | undefined;
  /** The machine's CPU milliseconds per message (the other setups are idle meanwhile). */
  machineMs: number;
}

/** Messages per second over one run of `count` messages, and what it cost in CPU. */
async function rate(setup: Setup, size: number, count: number): Promise<Run> {
  const before = setup.milter ? cpuSeconds(setup.milter.pid) : 0;
  const machineBefore = machineBusySeconds();
  const result = count / (await send(setup.postfix, count, size));
  await until(() => queueEmpty(setup.postfix), 'the queue to drain', 120_000);
  return {
    rate: result,
    cpuMs: setup.milter ? ((cpuSeconds(setup.milter.pid) - before) * 1000) / count : undefined,
    machineMs: ((machineBusySeconds() - machineBefore) * 1000) / count,
  };
}

async function run(options: BenchOptions): Promise<void> {
  if (!spawnSync(SMTP_SOURCE, [], { stdio: 'ignore' }).pid || process.getuid?.() !== 0) {
    console.log('\nmilter: needs root and Postfix (smtp-source, smtp-sink): `apt-get install postfix`; skipped.');
    return;
  }
  const havePymilter = spawnSync(PYTHON, ['-c', 'import Milter, mime'], { stdio: 'ignore' }).status === 0;
  const kinds: [Mode, Transport][] = [['ceiling', 'unix'], ['milterkit', 'unix'], ['one thread', 'unix'], ['empty pipeline', 'unix'], ['node floor', 'unix'], ['milterkit', 'tcp']];
  if (havePymilter) kinds.push(['pymilter', 'unix'], ['pymilter', 'tcp']);
  const repeats = options.quick ? 1 : 3;
  const scale = options.quick ? 0.1 : 1;
  const sinkPort = await freePort();
  const sink = spawn(SMTP_SINK, ['-u', 'nobody', '-c', `127.0.0.1:${sinkPort}`, '1000'], { stdio: 'ignore' });
  await until(() => connectable({ port: sinkPort }), 'smtp-sink');
  const rates = new Map<string, number[]>();
  const cpuMs = new Map<string, number[]>();
  const machineMs = new Map<string, number[]>();
  const record = (map: Map<string, number[]>, key: string, value: number): void => void map.set(key, [...(map.get(key) ?? []), value]);
  let memory: { afterWarmUp: number; after1000: number; atEnd: number } | undefined;
  const setups: [string, Setup][] = [];
  try {
    for (const [mode, transport] of kinds) setups.push([`${mode}/${transport}`, await setUp(mode, transport, sinkPort)]);
    for (let round = 0; round < repeats; round++) {
      for (const size of SIZES) {
        const count = Math.max(20, Math.round((COUNTS[size] as number) * scale));
        for (const [name, setup] of setups) {
          const r = await rate(setup, size, count);
          record(rates, `${name}/${size}`, r.rate);
          if (r.cpuMs !== undefined) record(cpuMs, `${name}/${size}`, r.cpuMs);
          record(machineMs, `${name}/${size}`, r.machineMs);
          console.error(`[bench milter] round ${round + 1}: ${name} ${size} B: ${r.rate.toFixed(1)} msg/s`);
        }
      }
    }
    const daemon = setups.find(([name]) => name === 'milterkit/unix')?.[1];
    if (daemon?.milter) {
      const afterWarmUp = rssKiB(daemon.milter.pid);
      const total = options.quick ? 2000 : MEMORY_MESSAGES;
      await send(daemon.postfix, 1000, 2048);
      const after1000 = rssKiB(daemon.milter.pid);
      await send(daemon.postfix, total - 1000, 2048);
      await until(() => queueEmpty(daemon.postfix), 'the queue to drain', 120_000);
      memory = { afterWarmUp, after1000, atEnd: rssKiB(daemon.milter.pid) };
    }
  } finally {
    for (const [, setup] of setups) await setup.stop();
    sink.kill();
  }
  const medianOf = (map: Map<string, number[]>, key: string): number | undefined => (map.has(key) ? median(map.get(key) as number[]) : undefined);

  console.log(`\n## milter: messages/s through Postfix (smtp-source -> Postfix -> smtp-sink), concurrency ${CONCURRENCY}, median of ${repeats}, after ${WARM_UP_MESSAGES} warm-up messages\n`);
  const rows: string[][] = [];
  const cpuRows: string[][] = [];
  const fixed = (n: number | undefined, digits: number): string => (n === undefined ? '-' : n.toFixed(digits));
  const milters = ['milterkit', 'one thread', 'empty pipeline', 'node floor', 'pymilter'];
  for (const transport of ['unix', 'tcp'] as Transport[]) {
    for (const size of SIZES) {
      const label = `${transport} ${size >= 1 << 20 ? `${size >> 20} MB` : `${Math.round(size / 1024)} KB`}`;
      const ceiling = medianOf(rates, `ceiling/unix/${size}`) as number;
      const ours = medianOf(rates, `milterkit/${transport}/${size}`) as number;
      const oneThread = medianOf(rates, `one thread/${transport}/${size}`);
      const empty = medianOf(rates, `empty pipeline/${transport}/${size}`);
      const floor = medianOf(rates, `node floor/${transport}/${size}`);
      const theirs = medianOf(rates, `pymilter/${transport}/${size}`);
      const added = (r: number): number => Math.max(0, 1000 / r - 1000 / ceiling);
      const share = (r: number | undefined): string => (r === undefined ? '-' : `${((100 * r) / ceiling).toFixed(0)}%`);
      rows.push([
        label,
        ceiling.toFixed(0),
        ours.toFixed(0),
        fixed(oneThread, 0),
        fixed(empty, 0),
        fixed(floor, 0),
        fixed(theirs, 0),
        added(ours).toFixed(2),
        theirs === undefined ? '-' : added(theirs).toFixed(2),
        theirs === undefined ? '-' : `${(added(theirs) / Math.max(added(ours), 1e-9)).toFixed(1)}x`,
        share(ours),
        share(empty),
        share(floor),
      ]);
      // The same comparison in CPU: what each setup costs the whole machine per message, above the ceiling's.
      const machineCeiling = medianOf(machineMs, `ceiling/unix/${size}`) as number;
      const machine = (mode: string): number | undefined => medianOf(machineMs, `${mode}/${transport}/${size}`);
      const machineAdded = (mode: string): number | undefined => {
        const m = machine(mode);
        return m === undefined ? undefined : Math.max(0, m - machineCeiling);
      };
      const oursAdded = machineAdded('milterkit') as number;
      const theirsAdded = machineAdded('pymilter');
      cpuRows.push([
        label,
        [machineCeiling, ...milters.map(machine)].map((m) => fixed(m, 2)).join(' / '),
        milters.map((mode) => fixed(medianOf(cpuMs, `${mode}/${transport}/${size}`), 2)).join(' / '),
        theirsAdded === undefined ? '-' : `${(theirsAdded / Math.max(oursAdded, 1e-9)).toFixed(1)}x`,
      ]);
    }
  }
  printTable(['socket, size', 'ceiling/s', 'milterkit/s', 'one thread/s', 'empty pipeline/s', 'node floor/s', 'pymilter/s', 'milterkit +ms/msg', 'pymilter +ms/msg', 'pymilter cost / ours', 'ours of ceiling', 'empty pipeline of ceiling', 'node floor of ceiling'], rows);
  console.log('\nCPU milliseconds per message: the whole machine (Postfix, smtp-source, smtp-sink, the milter, the kernel) and the milter process alone\n');
  printTable(['socket, size', 'machine: ceiling / ours / one thread / empty / node floor / pymilter', 'milter process: ours / one thread / empty / node floor / pymilter', 'pymilter machine CPU above the ceiling / ours'], cpuRows);
  if (memory) console.log(`\nmilterkit daemon RSS (unix, 2 KB messages): ${(memory.afterWarmUp / 1024).toFixed(0)} MiB after warm-up, ${(memory.after1000 / 1024).toFixed(0)} MiB after 1,000 more, ${(memory.atEnd / 1024).toFixed(0)} MiB after ${options.quick ? '2,000' : '10,000'}`);
  console.log('(targets: added cost at most half of pymilter\'s; within 25% of the ceiling at 100 KB; memory flat)');
}

export const milterArea: Area = { name: 'milter', run, measure: async () => undefined };
