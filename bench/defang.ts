// Defang benchmark: our defang (parse, defang, serialize) against pymilter's mime.defang (Debian package
// python3-milter) on the same corpus, once as it is and once with one banned attachment added to every
// message, so that throughput is compared at equal detection.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser } from 'htmlparser2';
import { mayHaveActiveContent } from '../src/defang/html-precheck.js';
import { HTML_PARSER_OPTIONS } from '../src/defang/html-sanitizer.js';
import { createPart, defang, parseMessage } from '../src/index.js';
import type { Area, BenchOptions } from './lib/area.js';
import { runChild } from './lib/child.js';
import { corpusSample, readMessages, writeMessages } from './lib/message-file.js';
import { printTable } from './lib/table.js';
import { median } from './lib/timing.js';

const WORK_DIR = fileURLToPath(new URL('.work/', import.meta.url));
const PYTHON = '/usr/bin/python3';
const PYMILTER_SCRIPT = fileURLToPath(new URL('pymilter-defang.py', import.meta.url));
const TARGET_SPEEDUP = 10;
const QUICK_MESSAGES = 1000;
const EXE = Buffer.from('MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00', 'latin1');

type InputId = 'corpus' | 'with-exe';
const INPUT_FILES: Record<InputId, string> = { corpus: join(WORK_DIR, 'defang-corpus.bin'), 'with-exe': join(WORK_DIR, 'defang-with-exe.bin') };

interface Sample {
  seconds: number;
  messages: number;
  bytes: number;
  changed: number;
  errors: number;
}

/** The message with an `invoice.exe` attachment added (a single-part message is wrapped in multipart/mixed). */
function withBannedAttachment(bytes: Buffer): Buffer {
  const msg = parseMessage(bytes);
  const exe = createPart({ contentType: 'application/octet-stream', content: EXE, filename: 'invoice.exe' });
  if (msg.root.kind === 'multipart') {
    msg.root.append(exe);
    return msg.toBuffer();
  }
  const boundary = '=_bench_wrap';
  const outer = [...msg.root.headers].filter((h) => !/^(content-|mime-version$)/.test(h.key)).map((h) => h.toBuffer());
  const inner = [...msg.root.headers].filter((h) => h.key.startsWith('content-')).map((h) => h.toBuffer());
  return Buffer.concat([
    ...outer,
    Buffer.from(`MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="${boundary}"\r\n\r\n--${boundary}\r\n`),
    ...inner,
    Buffer.from('\r\n'),
    msg.root.bodyBytes(),
    Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/octet-stream; name="invoice.exe"\r\nContent-Transfer-Encoding: base64\r\n\r\n${EXE.toString('base64')}\r\n--${boundary}--\r\n`),
  ]);
}

/** What no defang of ours can go below, on the corpus: parsing every message, and tokenizing the HTML
 * bodies the sanitizer has to read (those the pre-check cannot clear) with callbacks that do nothing. */
interface Floor {
  parseSeconds: number;
  tokenizeSeconds: number;
  htmlBodies: number;
  htmlBytes: number;
}

function measureFloor(): Floor {
  const messages = readMessages(INPUT_FILES.corpus);
  const html: string[] = [];
  for (const bytes of messages) {
    for (const part of parseMessage(bytes).walk()) {
      if (part.kind !== 'leaf' || part.contentType !== 'text/html') continue;
      const text = part.text();
      if (mayHaveActiveContent(text)) html.push(text);
    }
  }
  const timed = (work: () => void): number => {
    work(); // untimed warm-up, as for every case
    const start = process.hrtime.bigint();
    work();
    return Number(process.hrtime.bigint() - start) / 1e9;
  };
  const noop = (): void => undefined;
  const handler = { onopentag: noop, ontext: noop, onclosetag: noop, oncomment: noop, onprocessinginstruction: noop };
  return {
    parseSeconds: timed(() => messages.forEach((bytes) => parseMessage(bytes))),
    tokenizeSeconds: timed(() => html.forEach((text) => new Parser(handler, HTML_PARSER_OPTIONS).parseComplete(text))),
    htmlBodies: html.length,
    htmlBytes: html.reduce((n, t) => n + t.length, 0),
  };
}

async function measure(spec: { input: InputId } | { floor: true }): Promise<Sample | Floor> {
  if ('floor' in spec) return measureFloor();
  const messages = readMessages(INPUT_FILES[spec.input]);
  const pass = (): number => {
    let changed = 0;
    for (const bytes of messages) {
      const msg = parseMessage(bytes);
      if (defang(msg).verdict !== 'clean') changed++;
      msg.toBuffer();
    }
    return changed;
  };
  pass(); // untimed warm-up, as for every case
  const start = process.hrtime.bigint();
  const changed = pass();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  return { seconds, messages: messages.length, bytes: messages.reduce((n, m) => n + m.length, 0), changed, errors: 0 };
}

function pymilterAvailable(): boolean {
  if (!existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', 'import mime'], { stdio: 'ignore' }).status === 0;
}

function runPymilter(input: InputId): Sample {
  const result = spawnSync(PYTHON, [PYMILTER_SCRIPT, INPUT_FILES[input]], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (result.status !== 0) throw new Error(`pymilter bench failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as Sample;
}

async function run(options: BenchOptions): Promise<void> {
  mkdirSync(WORK_DIR, { recursive: true });
  const corpus = corpusSample(options.quick ? QUICK_MESSAGES : Infinity);
  writeMessages(INPUT_FILES.corpus, corpus);
  writeMessages(INPUT_FILES['with-exe'], corpus.map(withBannedAttachment));
  const repetitions = options.quick ? 1 : 3;
  const havePymilter = pymilterAvailable();
  if (!havePymilter) console.log('\npymilter (python3-milter) not found: `apt-get install python3-milter` to compare; ours only.');
  const rows: string[][] = [];
  const ratios: string[][] = [];
  let pymilterCorpusSeconds: number | undefined;
  for (const input of ['corpus', 'with-exe'] as InputId[]) {
    const ours: Sample[] = [];
    const theirs: Sample[] = [];
    for (let r = 1; r <= repetitions; r++) {
      process.stderr.write(`defang ${r}/${repetitions}: ${input}\n`);
      ours.push(await runChild<Sample>('defang', { input }));
      if (havePymilter) theirs.push(runPymilter(input));
    }
    const line = (label: string, samples: Sample[]): number => {
      const seconds = median(samples.map((s) => s.seconds));
      const first = samples[0] as Sample;
      rows.push([input, label, seconds.toFixed(3), (first.messages / seconds).toFixed(0), (first.bytes / 1e6 / seconds).toFixed(1), `${first.changed}/${first.messages}`, String(first.errors)]);
      return first.messages / seconds;
    };
    const ourRate = line('milterkit defang', ours);
    if (havePymilter) {
      const theirRate = line('pymilter mime.defang (scan_zip)', theirs);
      if (input === 'corpus') pymilterCorpusSeconds = median(theirs.map((s) => s.seconds));
      const speedup = ourRate / theirRate;
      ratios.push([input, `${speedup.toFixed(1)}x`, speedup >= TARGET_SPEEDUP ? 'ok' : 'MISSED']);
    }
  }
  console.log(`\n## defang: median of ${repetitions} runs, each after one untimed pass; corpus ${corpus.length} messages\n`);
  printTable(['input', 'case', 'median s', 'msg/s', 'MB/s', 'changed', 'errors'], rows);
  if (ratios.length > 0) {
    console.log(`\n### target: at least ${TARGET_SPEEDUP}x pymilter's throughput\n`);
    printTable(['input', 'ours / pymilter', 'status'], ratios);
  }
  const floor = await runChild<Floor>('defang', { floor: true });
  const budget = pymilterCorpusSeconds === undefined ? undefined : pymilterCorpusSeconds / TARGET_SPEEDUP;
  console.log(`\n### the floor on the corpus (no defang at all)\n`);
  printTable(
    ['step', 'seconds'],
    [
      ['parse every message', floor.parseSeconds.toFixed(3)],
      [`tokenize the ${floor.htmlBodies} HTML bodies the pre-check cannot clear (${(floor.htmlBytes / 1e6).toFixed(1)} M chars), empty callbacks`, floor.tokenizeSeconds.toFixed(3)],
      ['floor: parse + tokenize', (floor.parseSeconds + floor.tokenizeSeconds).toFixed(3)],
      ...(budget === undefined ? [] : [[`the whole time allowed by the ${TARGET_SPEEDUP}x target (pymilter's / ${TARGET_SPEEDUP})`, budget.toFixed(3)]]),
    ],
  );
}

export const defangArea: Area = { name: 'defang', run, measure: (spec) => measure(spec as { input: InputId } | { floor: true }) };
