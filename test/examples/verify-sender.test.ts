import { afterEach, describe, expect, it } from 'vitest';
import { MemoryVerificationCache } from '../../src/index.js';
import { table, verifySenders } from '../../examples/verify-sender.js';
import { fakeResolver, scriptedServer, type ScriptedServer } from '../cbv/scripted-smtp.js';

let s: ScriptedServer | undefined;
afterEach(async () => s?.close());

describe('examples/verify-sender', () => {
  it('verifies a list with one session per domain and a shared cache, and prints a table', async () => {
    s = await scriptedServer({ reply: (line) => (line === 'RCPT TO:<ghost@example.test>' ? '550 5.1.1 no such user' : undefined) });
    const resolver = fakeResolver({ 'example.test': { mx: [{ exchange: 'mx.example.test', priority: 10 }], a: { 'mx.example.test': ['127.0.0.1'] } }, 'nullmx.test': { mx: [{ exchange: '', priority: 0 }] } });
    const cache = new MemoryVerificationCache();
    const options = { resolver, port: s.port, allowLoopback: true, heloName: 'verifier.test', cache };
    const results = await verifySenders(['alice@example.test', 'ghost@example.test', 'x@nullmx.test', 'alice@example.test'], options);
    expect(results.map((r) => r.result)).toEqual(['valid', 'invalid', 'invalid', 'valid']);
    expect(s.sessions.length).toBe(1);
    const again = await verifySenders(['ghost@example.test'], options);
    expect(again[0]?.fromCache).toBe(true);
    const printed = table(results).split('\n');
    expect(printed[0]).toMatch(/^address\s+result\s+detail\s+reply\s+mx\s+time$/);
    expect(printed[2]).toMatch(/^ghost@example\.test\s+invalid\s+550 5\.1\.1\s+mx\.example\.test/);
    expect(printed[3]).toMatch(/^x@nullmx\.test\s+invalid\s+null-mx\s+550 5\.7\.27/);
  });
});
