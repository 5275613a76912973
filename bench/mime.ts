// MIME tree benchmark: our parse+serialize round trip against @zone-eu/mailsplit (Splitter -> Joiner),
// and parsing against mailparser and postal-mime, on the same inputs in one run. The method follows the
// peer measurements in the research note mime_anchors.md (section 3), so the figures can be compared.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { bigAttachment } from '../fixtures/generate-mime.js';
import type { Area, BenchOptions } from './lib/area.js';
import { runChild } from './lib/child.js';
import { corpusSample, readMessages, writeMessages } from './lib/message-file.js';
import { baselineRss, peakRss } from './lib/memory.js';
import { printTable } from './lib/table.js';
import { median, timeIt } from './lib/timing.js';

const WORK_DIR = fileURLToPath(new URL('.work/', import.meta.url));
/** The corpus messages of this run (see lib/message-file.ts). */
const CORPUS_FILE = join(WORK_DIR, 'corpus.bin');
const BIG_FILE = join(WORK_DIR, 'big-attachment.eml');
/** bigAttachment() stays at or just under this (25 MiB). */
const BIG_BYTES = 25 * 2 ** 20;
const QUICK_CORPUS_MESSAGES = 1000;

const MB = 1e6;
const TARGET_CORPUS_SPEEDUP = 3;
const TARGET_BIG_BYTES_PER_SECOND = 1e9;
const TARGET_BIG_PEAK_MULTIPLE = 1.5;

type InputId = 'corpus' | 'big';

/** What a child measures; 'file' runners are handed the path and read the message themselves. */
type Runner =
  | {
      source: 'bytes';
      /** The timed work; its output is dropped. */
      measure(message: Buffer): Promise<void>;
      /** Round trips only, untimed and after the peak is taken: was the output byte-identical? */
      verify?(message: Buffer): Promise<boolean>;
    }
  | {
      source: 'file';
      measure(path: string): Promise<void>;
      verify(path: string, expected: Buffer): Promise<boolean>;
    };

interface Case {
  id: string;
  label: string;
  ours: boolean;
  inputs: readonly InputId[];
  /** Runs in the child only, so each child imports just the library it measures. */
  load(): Promise<Runner>;
}

/** Drops every chunk: the timed file run measures serialization, not storage. */
function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

function collect(chunks: Buffer[]): Writable {
  return new Writable({
    write: (chunk: Buffer, _encoding, done) => {
      chunks.push(chunk);
      done();
    },
  });
}

/** A Splitter -> Joiner round trip of one message, each output chunk handed to onChunk. */
async function loadSplitJoin(): Promise<(message: Buffer, onChunk: (chunk: Buffer) => void) => Promise<void>> {
  const { Splitter, Joiner } = await import('@zone-eu/mailsplit');
  return (message, onChunk) =>
    new Promise((resolve, reject) => {
      // Cast to plain Transforms: mailsplit's typings narrow every listener method to 'data', so its
      // classes do not even type-check as Transform. Wired by hand rather than with pipeline(), whose
      // per-call cost would show at 17k messages/s.
      const splitter = new Splitter() as unknown as Transform;
      const joiner = new Joiner() as unknown as Transform;
      splitter.on('error', reject);
      joiner.on('error', reject);
      joiner.on('end', resolve);
      joiner.on('data', onChunk);
      splitter.pipe(joiner);
      splitter.end(message);
    });
}

const LEAN_MAILPARSER = { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, skipImageLinks: true };

const CASES: readonly Case[] = [
  {
    id: 'ours-file',
    label: 'ours parseFile -> writeTo',
    ours: true,
    inputs: ['big'],
    load: async () => {
      const { parseFile } = await import('../src/index.js');
      return {
        source: 'file',
        measure: async (path) => (await parseFile(path)).writeTo(discard()),
        verify: async (path, expected) => {
          const chunks: Buffer[] = [];
          await (await parseFile(path)).writeTo(collect(chunks));
          return Buffer.concat(chunks).equals(expected);
        },
      };
    },
  },
  {
    id: 'ours-buffer',
    label: 'ours parseMessage -> toBuffer',
    ours: true,
    inputs: ['corpus', 'big'],
    load: async () => {
      const { parseMessage } = await import('../src/index.js');
      return {
        source: 'bytes',
        measure: async (message) => void parseMessage(message).toBuffer(),
        verify: async (message) => parseMessage(message).toBuffer().equals(message),
      };
    },
  },
  {
    id: 'mailsplit',
    label: '@zone-eu/mailsplit Splitter -> Joiner',
    ours: false,
    inputs: ['corpus', 'big'],
    load: async () => {
      const splitJoin = await loadSplitJoin();
      return {
        source: 'bytes',
        measure: (message) => splitJoin(message, () => {}),
        verify: async (message) => {
          const chunks: Buffer[] = [];
          await splitJoin(message, (chunk) => chunks.push(chunk));
          return Buffer.concat(chunks).equals(message);
        },
      };
    },
  },
  {
    id: 'simpleparser',
    label: 'mailparser simpleParser',
    ours: false,
    inputs: ['corpus', 'big'],
    load: async () => {
      const { simpleParser } = await import('mailparser');
      return { source: 'bytes', measure: async (message) => void (await simpleParser(message)) };
    },
  },
  {
    id: 'simpleparser-lean',
    label: 'mailparser simpleParser lean',
    ours: false,
    inputs: ['corpus', 'big'],
    load: async () => {
      const { simpleParser } = await import('mailparser');
      return { source: 'bytes', measure: async (message) => void (await simpleParser(message, LEAN_MAILPARSER)) };
    },
  },
  {
    id: 'postal-mime',
    label: 'postal-mime parse',
    ours: false,
    inputs: ['corpus', 'big'],
    load: async () => {
      const { default: PostalMime } = await import('postal-mime');
      return { source: 'bytes', measure: async (message) => void (await PostalMime.parse(message)) };
    },
  },
];

const INPUTS: readonly InputId[] = ['corpus', 'big'];

// ---- inputs ----

/** Writes this run's inputs to bench/.work/ and returns their sizes. */
function prepareInputs(quick: boolean): { corpusMessages: number; corpusBytes: number; bigBytes: number } {
  mkdirSync(WORK_DIR, { recursive: true });
  const chosen = corpusSample(quick ? QUICK_CORPUS_MESSAGES : Infinity);
  writeMessages(CORPUS_FILE, chosen);
  const big = bigAttachment(BIG_BYTES);
  writeFileSync(BIG_FILE, big);
  const corpusBytes = chosen.reduce((sum, message) => sum + message.length, 0);
  return { corpusMessages: chosen.length, corpusBytes, bigBytes: big.length };
}

// ---- child side ----

interface Spec {
  caseId: string;
  input: InputId;
}

interface Sample {
  seconds: number;
  bytes: number;
  messages: number;
  baselineRss: number;
  peakRss: number;
  /** Byte-identical outputs, for round trips. */
  identical?: number;
}

async function measure(spec: Spec): Promise<Sample> {
  const found = CASES.find((c) => c.id === spec.caseId);
  if (!found) throw new Error(`unknown mime case ${spec.caseId}`);
  const runner = await found.load();

  if (runner.source === 'file') {
    const baseline = baselineRss();
    const seconds = await timeIt(() => runner.measure(BIG_FILE));
    const peak = peakRss();
    const expected = readFileSync(BIG_FILE);
    const identical = (await runner.verify(BIG_FILE, expected)) ? 1 : 0;
    return { seconds, bytes: expected.length, messages: 1, baselineRss: baseline, peakRss: peak, identical };
  }

  const messages = spec.input === 'corpus' ? readMessages(CORPUS_FILE) : [readFileSync(BIG_FILE)];
  // One untimed pass first: a filter is a long-running process, so steady state is what matters, and
  // every peer gets the same warm-up.
  for (const message of messages) await runner.measure(message);
  const baseline = baselineRss();
  const seconds = await timeIt(async () => {
    for (const message of messages) await runner.measure(message);
  });
  const peak = peakRss();
  let identical: number | undefined;
  if (runner.verify) {
    identical = 0;
    for (const message of messages) if (await runner.verify(message)) identical++;
  }
  const bytes = messages.reduce((sum, message) => sum + message.length, 0);
  return { seconds, bytes, messages: messages.length, baselineRss: baseline, peakRss: peak, identical };
}

// ---- parent side ----

interface Row {
  input: InputId;
  case: Case;
  samples: Sample[];
  /** Set when a run failed: the row then has no figures. */
  failure?: string;
}

interface Figures {
  seconds: number;
  /** Half the range of the run times relative to the median, to tell a real gap from a noisy machine. */
  spread: number | undefined;
  bytesPerSecond: number;
  messagesPerSecond: number;
  /** Median over the runs of peak RSS minus baseline, in bytes. */
  peakOverBaseline: number;
  /** peakOverBaseline as a multiple of the input size. */
  peakMultiple: number;
  identical: string;
}

function figures(samples: readonly Sample[]): Figures {
  const first = samples[0]!;
  const times = samples.map((s) => s.seconds);
  const seconds = median(times);
  const peakOverBaseline = median(samples.map((s) => s.peakRss - s.baselineRss));
  return {
    seconds,
    spread: samples.length > 1 ? (Math.max(...times) - Math.min(...times)) / 2 / seconds : undefined,
    bytesPerSecond: first.bytes / seconds,
    messagesPerSecond: first.messages / seconds,
    peakOverBaseline,
    peakMultiple: peakOverBaseline / first.bytes,
    // The same in every run (the inputs are fixed), so the worst run is shown.
    identical: first.identical === undefined ? '-' : `${Math.min(...samples.map((s) => s.identical ?? 0))}/${first.messages}`,
  };
}

const fixed = (value: number, digits: number) => value.toFixed(digits);
const thousands = (value: number) => Math.round(value).toLocaleString('en-US');

async function run(options: BenchOptions): Promise<void> {
  const repetitions = options.quick ? 1 : 3;
  const sizes = prepareInputs(options.quick);
  const rows: Row[] = INPUTS.flatMap((input) => CASES.filter((c) => c.inputs.includes(input)).map((c) => ({ input, case: c, samples: [] })));

  // Repetition-major order spreads slow drift of a shared machine over all cases alike.
  for (let repetition = 1; repetition <= repetitions; repetition++) {
    for (const row of rows) {
      if (row.failure) continue;
      process.stderr.write(`mime ${repetition}/${repetitions}: ${row.input} ${row.case.label}\n`);
      try {
        row.samples.push(await runChild<Sample>('mime', { caseId: row.case.id, input: row.input } satisfies Spec));
      } catch (error) {
        row.failure = (error as Error).message;
        row.samples = [];
        process.exitCode = 1;
      }
    }
  }

  console.log(`\n## mime: median of ${repetitions} fresh processes per row; node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}`);
  console.log('MB = 10^6 bytes. Peak RSS is process.resourceUsage().maxRSS minus the RSS after loading the input.');
  const titles: Record<InputId, string> = {
    corpus: `corpus: SpamAssassin public corpus, ${thousands(sizes.corpusMessages)} messages, ${fixed(sizes.corpusBytes / MB, 1)} MB`,
    big: `big: one ${thousands(sizes.bigBytes)} B (${fixed(sizes.bigBytes / MB, 1)} MB) multipart/mixed, base64 attachment in 76-column CRLF lines`,
  };
  const done = new Map<string, Figures>();
  for (const input of INPUTS) {
    console.log(`\n### ${titles[input]}\n`);
    const inputRows = rows.filter((row) => row.input === input);
    const tableRows = inputRows.map((row) => {
      if (row.failure) return [row.case.label, 'FAILED'];
      const f = figures(row.samples);
      done.set(`${input}/${row.case.id}`, f);
      return [
        row.case.label,
        fixed(f.seconds, 3),
        f.spread === undefined ? '-' : `±${fixed(f.spread * 100, 0)}%`,
        fixed(f.bytesPerSecond / MB, 1),
        thousands(f.messagesPerSecond),
        fixed(f.peakOverBaseline / MB, 1),
        input === 'big' ? `${fixed(f.peakMultiple, 2)}x` : '-',
        f.identical,
      ];
    });
    printTable(['case', 'median s', 'spread', 'MB/s', 'msg/s', 'peak RSS +MB', 'peak / size', 'byte-identical'], tableRows);
    for (const row of inputRows) if (row.failure) console.log(`\n${row.case.label} FAILED: ${row.failure}`);
  }

  // Ours against each peer on the same input: above 1 means ours is faster / uses more memory.
  const ratioRows: string[][] = [];
  for (const input of INPUTS) {
    for (const ours of CASES.filter((c) => c.ours && c.inputs.includes(input))) {
      const o = done.get(`${input}/${ours.id}`);
      for (const peer of CASES.filter((c) => !c.ours && c.inputs.includes(input))) {
        const p = done.get(`${input}/${peer.id}`);
        if (!o || !p) continue;
        const memory = p.peakOverBaseline > 0 ? `${fixed(o.peakOverBaseline / p.peakOverBaseline, 2)}x` : '-';
        ratioRows.push([`${input}: ${ours.label} / ${peer.label}`, `${fixed(o.bytesPerSecond / p.bytesPerSecond, 2)}x`, memory]);
      }
    }
  }
  console.log('\n### ours / peer\n');
  if (ratioRows.length > 0) printTable(['input: ours / peer', 'throughput', 'peak RSS over baseline'], ratioRows);
  else console.log('(no figures for ours yet)');

  console.log('\n### targets\n');
  printTable(['target', 'figure', 'status'], targetRows(done));
}

function targetRows(done: ReadonlyMap<string, Figures>): string[][] {
  const status = (met: boolean) => (met ? 'ok' : 'MISSED');
  const rows: string[][] = [];
  const ours = done.get('corpus/ours-buffer');
  const mailsplit = done.get('corpus/mailsplit');
  const speedup = ours && mailsplit ? ours.bytesPerSecond / mailsplit.bytesPerSecond : undefined;
  rows.push([
    `corpus round trip >= ${TARGET_CORPUS_SPEEDUP}x mailsplit throughput`,
    speedup === undefined ? 'n/a' : `${fixed(speedup, 2)}x`,
    speedup === undefined ? 'n/a' : status(speedup >= TARGET_CORPUS_SPEEDUP),
  ]);
  for (const id of ['ours-file', 'ours-buffer']) {
    const label = CASES.find((c) => c.id === id)!.label;
    const f = done.get(`big/${id}`);
    rows.push([
      `big: ${label} >= ${TARGET_BIG_BYTES_PER_SECOND / 1e9} GB/s`,
      f ? `${fixed(f.bytesPerSecond / 1e9, 2)} GB/s` : 'n/a',
      f ? status(f.bytesPerSecond >= TARGET_BIG_BYTES_PER_SECOND) : 'n/a',
    ]);
    rows.push([
      `big: ${label} peak RSS < ${TARGET_BIG_PEAK_MULTIPLE}x message size`,
      f ? `${fixed(f.peakMultiple, 2)}x` : 'n/a',
      f ? status(f.peakMultiple < TARGET_BIG_PEAK_MULTIPLE) : 'n/a',
    ]);
  }
  return rows;
}

export const mime: Area = {
  name: 'mime',
  run,
  measure: (spec) => measure(spec as Spec),
};
