// DSN benchmark: createDsn (parse the original, build an RFC 3464 report returning it) against pymilter's
// Milter.dsn.create_msg (a plain-text template, no report) on the same originals from the corpus.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDsn } from '../src/index.js';
import type { Area, BenchOptions } from './lib/area.js';
import { runChild } from './lib/child.js';
import { corpusSample, readMessages, writeMessages } from './lib/message-file.js';
import { printTable } from './lib/table.js';
import { median } from './lib/timing.js';

const WORK_FILE = fileURLToPath(new URL('.work/dsn-originals.bin', import.meta.url));
const PYTHON = '/usr/bin/python3';
const PYMILTER_SCRIPT = fileURLToPath(new URL('pymilter-dsn.py', import.meta.url));

interface Sample {
  seconds: number;
  messages: number;
  /** pymilter only: originals it could not make a DSN for (it raises on non-ASCII subjects). */
  errors?: number;
}

async function measure(): Promise<Sample> {
  const originals = readMessages(WORK_FILE);
  const pass = (): void => {
    for (const original of originals) {
      createDsn({
        original,
        reportingMta: 'mx.example.org',
        envelope: { mailFrom: 'alice@example.com' },
        recipients: [{ finalRecipient: 'bob@example.org', action: 'failed', diagnosticCode: '550 5.1.1 no such user' }],
      });
    }
  };
  pass();
  const start = process.hrtime.bigint();
  pass();
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, messages: originals.length };
}

function pymilter(): Sample | undefined {
  if (spawnSync(PYTHON, ['-c', 'from Milter import dsn'], { stdio: 'ignore' }).status !== 0) return undefined;
  const result = spawnSync(PYTHON, [PYMILTER_SCRIPT, WORK_FILE], { encoding: 'utf8' });
  return result.status === 0 ? (JSON.parse(result.stdout) as Sample) : undefined;
}

async function run(options: BenchOptions): Promise<void> {
  mkdirSync(join(WORK_FILE, '..'), { recursive: true });
  // Originals that are not themselves DSNs or automatic replies (those get no DSN at all).
  writeMessages(WORK_FILE, corpusSample(options.quick ? 500 : 2000).filter((m) => !/^(?:auto-submitted|content-type:\s*multipart\/report)/im.test(m.toString('latin1'))));
  const repetitions = options.quick ? 1 : 3;
  const ours: Sample[] = [];
  const theirs: Sample[] = [];
  for (let r = 1; r <= repetitions; r++) {
    process.stderr.write(`dsn ${r}/${repetitions}\n`);
    ours.push(await runChild<Sample>('dsn', {}));
    const p = pymilter();
    if (p) theirs.push(p);
  }
  const rate = (samples: Sample[]): number => (samples[0]?.messages ?? 0) / median(samples.map((s) => s.seconds));
  const rows = [['milterkit createDsn (multipart/report, original returned)', rate(ours).toFixed(0)]];
  if (theirs.length > 0) rows.push([`pymilter Milter.dsn.create_msg (plain text; ${theirs[0]?.errors ?? 0} failed)`, rate(theirs).toFixed(0)]);
  console.log(`\n## dsn: DSNs per second, median of ${repetitions} runs after one untimed pass, ${ours[0]?.messages ?? 0} originals\n`);
  printTable(['case', 'DSNs/s'], rows);
  if (theirs.length > 0) console.log(`\nours / pymilter: ${(rate(ours) / rate(theirs)).toFixed(1)}x`);
  else console.log('\npymilter (python3-milter) not found: `apt-get install python3-milter` to compare.');
}

export const dsnArea: Area = { name: 'dsn', run, measure: () => measure() };
