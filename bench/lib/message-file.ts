import { readFileSync, writeFileSync } from 'node:fs';
import { loadCorpus } from '../../fixtures/corpus.js';

/**
 * A set of messages stored as one file plus a JSON list of lengths, so that a benchmark child reads its
 * input in one call (reading 6,000 files would put the peak RSS in the loading, not in the work), and so
 * that a Python peer can read the very same bytes.
 */
export function writeMessages(path: string, messages: readonly Buffer[]): void {
  writeFileSync(path, Buffer.concat(messages));
  writeFileSync(`${path}.lengths.json`, JSON.stringify(messages.map((m) => m.length)));
}

/** The messages as views into one buffer. */
export function readMessages(path: string): Buffer[] {
  const all = readFileSync(path);
  const lengths = JSON.parse(readFileSync(`${path}.lengths.json`, 'utf8')) as number[];
  let offset = 0;
  return lengths.map((length) => all.subarray(offset, (offset += length)));
}

/** The SpamAssassin corpus, or an even spread of `count` messages over all its groups (ham and spam). */
export function corpusSample(count = Infinity): Buffer[] {
  const all = loadCorpus().map((m) => m.bytes);
  const n = Math.min(count, all.length);
  return Array.from({ length: n }, (_, i) => all[Math.floor((i * all.length) / n)] as Buffer);
}
