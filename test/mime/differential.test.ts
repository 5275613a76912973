import { describe, expect, it } from 'vitest';
import { loadCorpus } from '../../fixtures/corpus.js';
import { compareWithMailparser } from './differential.js';

describe('differential: mailparser decodes what we decode', () => {
  it('agrees on every attachment (bytes and name) and every single-text body of the corpus', async () => {
    const disagreements: string[] = [];
    for (const m of loadCorpus()) {
      for (const d of await compareWithMailparser(m.bytes)) disagreements.push(`${m.name}: ${d.what}: ${d.detail}`);
    }
    expect(disagreements).toEqual([]);
  });
});
