import { afterEach, describe, expect, it } from 'vitest';
import { MemoryVerificationCache, verifyAddress, verifyAddresses, type VerifyOptions } from '../../src/index.js';
import { fakeResolver, scriptedServer, type Script, type ScriptedServer } from './scripted-smtp.js';

const servers: ScriptedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function server(script: Script = {}, host = '127.0.0.1', port = 0): Promise<ScriptedServer> {
  const s = await scriptedServer(script, host, port);
  servers.push(s);
  return s;
}

/** example.test's MX is mx1 (and mx2), on the scripted server's port. */
function setup(port: number, extra: Partial<VerifyOptions> = {}, mx2 = '127.0.0.2'): VerifyOptions {
  return {
    resolver: fakeResolver({
      'example.test': { mx: [{ exchange: 'mx1.example.test', priority: 10 }, { exchange: 'mx2.example.test', priority: 20 }], a: { 'mx1.example.test': ['127.0.0.1'], 'mx2.example.test': [mx2] } },
    }),
    port,
    heloName: 'verifier.milterkit.test',
    allowLoopback: true,
    cache: false,
    timeoutMs: 5000,
    // The default etiquette (30 sessions a minute per domain) would pace this suite.
    maxSessionsPerMinutePerDomain: 100_000,
    ...extra,
  };
}

const rcpt = (reply: string) => (line: string) => (line.startsWith('RCPT') ? reply : undefined);

describe('verifyAddress against scripted SMTP servers', () => {
  it('accepts a 250 and says exactly EHLO, MAIL FROM:<>, RCPT TO, QUIT — never DATA', async () => {
    const s = await server();
    const v = await verifyAddress('user@example.test', setup(s.port));
    expect(v.result).toBe('valid');
    expect(v.mx).toBe('mx1.example.test');
    await s.ended();
    expect(s.sessions).toEqual([['EHLO verifier.milterkit.test', 'MAIL FROM:<>', 'RCPT TO:<user@example.test>', 'QUIT']]);
    expect(v.transcript.filter((l) => l.startsWith('C: '))).toEqual(['C: EHLO verifier.milterkit.test', 'C: MAIL FROM:<>', 'C: RCPT TO:<user@example.test>', 'C: QUIT']);
  });

  it.each([
    ['251 2.1.5 will forward', 'valid', '2.1.5'],
    ['550 5.1.1 <user@example.test>: Recipient address rejected: User unknown', 'invalid', '5.1.1'],
    ['553 5.1.3 bad address syntax', 'invalid', '5.1.3'],
    ['550 no such user', 'invalid', undefined],
    ['550 5.7.1 Client host blocked using zen.example', 'unverifiable', '5.7.1'],
    ['450 4.7.1 Greylisted, try again in 5 minutes', 'tempfail', '4.7.1'],
    ['452 4.5.3 too many recipients', 'tempfail', '4.5.3'],
    ['552 5.5.3 too many recipients', 'tempfail', '5.5.3'],
  ])('RCPT answered %j is %s', async (reply, result, enhanced) => {
    const s = await server({ reply: rcpt(reply) });
    const v = await verifyAddress('user@example.test', setup(s.port));
    expect(v.result).toBe(result);
    expect(v.code).toBe(Number(reply.slice(0, 3)));
    expect(v.enhancedStatus).toBe(enhanced);
    expect(v.message).toContain(reply.slice(4));
  });

  it('greylisting: tempfail first, valid when retried', async () => {
    let attempts = 0;
    const s = await server({ reply: (line) => (line.startsWith('RCPT') ? (++attempts === 1 ? '450 4.7.1 greylisted' : '250 ok') : undefined) });
    const cache = new MemoryVerificationCache();
    const first = await verifyAddress('user@example.test', setup(s.port, { cache, ttls: { tempfailMs: 1 } }));
    expect(first.result).toBe('tempfail');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect((await verifyAddress('user@example.test', setup(s.port, { cache }))).result).toBe('valid');
  });

  it('moves to the next MX on a 421 greeting; all 421 is tempfail', async () => {
    // mx1 (127.0.0.1) and mx2 (127.0.0.2) on one port: mx1 is busy, mx2 answers.
    const ok = await server({}, '127.0.0.2');
    const busy = await server({ greeting: '421 4.3.2 busy' }, '127.0.0.1', ok.port);
    const v = await verifyAddress('user@example.test', setup(ok.port, {}, '127.0.0.2'));
    expect(v).toMatchObject({ result: 'valid', mx: 'mx2.example.test' });
    expect(busy.sessions.length).toBe(1);
    const allBusy = await verifyAddress('user@example.test', setup(busy.port, {}, '127.0.0.1'));
    expect(allBusy.result).toBe('tempfail');
    expect(allBusy.message).toContain('421');
  });

  it('stays within the budget when the banner is slower than it', async () => {
    const s = await server({ greeting: { delayMs: 3000, reply: '220 slow' } });
    const started = Date.now();
    const v = await verifyAddress('user@example.test', setup(s.port, { timeoutMs: 400 }));
    expect(v.result).toBe('tempfail');
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('gives tempfail when the server goes silent after RCPT', async () => {
    const s = await server({ reply: (line) => (line.startsWith('RCPT') ? null : undefined) });
    const v = await verifyAddress('user@example.test', setup(s.port, { commandTimeoutMs: 300 }));
    expect(v.result).toBe('tempfail');
    expect(v.detail).toBe('no reply');
  });

  it('uses the second MX when the first refuses connections', async () => {
    const s = await server({}, '127.0.0.2');
    // mx1 is 127.0.0.1 on the same port, where nothing listens.
    const v = await verifyAddress('user@example.test', setup(s.port, {}, '127.0.0.2'));
    expect(v.result).toBe('valid');
    expect(v.mx).toBe('mx2.example.test');
  });

  it('waits for the last line of a greeting split over TCP writes', async () => {
    const s = await server({ greeting: { chunks: ['220-mx.test first', ' line\r\n220-second\r', '\n', '220 last\r\n'], gapMs: 30 } });
    const v = await verifyAddress('user@example.test', setup(s.port));
    expect(v.result).toBe('valid');
    expect(v.transcript.slice(1, 4)).toEqual(['S: 220-mx.test first line', 'S: 220-second', 'S: 220 last']);
  });

  it('reads replies sent a byte at a time, and multi-line rejections', async () => {
    const reject = '550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1 Please try again.\r\n';
    const s = await server({ reply: (line) => (line.startsWith('RCPT') ? { chunks: reject.split(''), gapMs: 1 } : undefined) });
    const v = await verifyAddress('user@example.test', setup(s.port));
    expect(v.result).toBe('invalid');
    expect(v.message).toBe('550 5.1.1 The email account that you tried to reach does not exist. / 550 5.1.1 Please try again.');
  });

  it('falls back to HELO when EHLO is refused', async () => {
    const s = await server({ reply: (line) => (line.startsWith('EHLO') ? '502 5.5.1 no EHLO' : undefined) });
    const v = await verifyAddress('user@example.test', setup(s.port));
    expect(v.result).toBe('valid');
    expect(s.sessions[0]?.slice(0, 2)).toEqual(['EHLO verifier.milterkit.test', 'HELO verifier.milterkit.test']);
  });

  it('records a domain that refuses the null sender, without asking RCPT', async () => {
    const s = await server({ reply: (line) => (line.startsWith('MAIL') ? '550 5.7.1 we do not accept bounces' : undefined) });
    const v = await verifyAddress('user@example.test', setup(s.port));
    expect(v.result).toBe('unverifiable');
    expect(v.detail).toBe('null-sender-refused');
    expect(s.sessions[0]?.some((c) => c.startsWith('RCPT'))).toBe(false);
  });

  it('null MX, NXDOMAIN, SERVFAIL and loopback MX need no connection', async () => {
    const s = await server();
    const resolver = fakeResolver({
      'nullmx.test': { mx: [{ exchange: '', priority: 0 }] },
      'broken.test': { error: 'ESERVFAIL' },
      'implicit.test': { a: { 'implicit.test': ['127.0.0.1'] } },
    });
    const base = { resolver, port: s.port, cache: false as const, timeoutMs: 2000 };
    expect(await verifyAddress('a@nullmx.test', base)).toMatchObject({ result: 'invalid', enhancedStatus: '5.7.27', detail: 'null-mx' });
    expect(await verifyAddress('a@nowhere.test', base)).toMatchObject({ result: 'invalid', enhancedStatus: '5.1.8' });
    expect(await verifyAddress('a@broken.test', base)).toMatchObject({ result: 'tempfail', detail: 'dns' });
    expect(await verifyAddress('a@implicit.test', base)).toMatchObject({ result: 'unverifiable', detail: 'mx-not-public' });
    expect(s.sessions.length).toBe(0);
    expect((await verifyAddress('a@implicit.test', { ...base, allowLoopback: true })).result).toBe('valid');
    expect(s.sessions.length).toBe(1);
  });

  it('refuses addresses that could inject commands, before any lookup', async () => {
    const options = setup(1);
    for (const bad of ['a@b.test\r\nDATA', 'a b@example.test', '<a>@example.test', 'nodomain', 'a@localhost']) {
      expect((await verifyAddress(bad, options)).result).toBe('invalid');
    }
    expect((options.resolver as unknown as { lookups: number }).lookups).toBe(0);
  });

  it('answers from the cache without a connection, and shares one probe between concurrent checks', async () => {
    const s = await server({ reply: rcpt({ delayMs: 100, reply: '250 ok' } as never) });
    const cache = new MemoryVerificationCache();
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => verifyAddress('user@example.test', setup(s.port, { cache }))));
    expect([a?.result, b?.result, c?.result]).toEqual(['valid', 'valid', 'valid']);
    expect(s.sessions.length).toBe(1);
    const cached = await verifyAddress('user@example.test', setup(s.port, { cache }));
    expect(cached.fromCache).toBe(true);
    expect(s.sessions.length).toBe(1);
  });

  it('holds the per-domain session limit', async () => {
    const s = await server({ reply: rcpt({ delayMs: 150, reply: '250 ok' } as never) });
    const addresses = Array.from({ length: 6 }, (_, i) => `user${i}@example.test`);
    const results = await Promise.all(addresses.map((a) => verifyAddress(a, setup(s.port, { maxConcurrentPerDomain: 2 }))));
    expect(results.every((r) => r.result === 'valid')).toBe(true);
    expect(s.sessions.length).toBe(6);
    expect(s.maxConcurrent).toBeLessThanOrEqual(2);
  });

  it('asks about several addresses of a domain in one session, with RSET between', async () => {
    const s = await server({ reply: (line) => (line === 'RCPT TO:<bad@example.test>' ? '550 5.1.1 unknown' : undefined) });
    const results = await verifyAddresses(['good@example.test', 'bad@example.test'], setup(s.port));
    expect(results.map((r) => r.result)).toEqual(['valid', 'invalid']);
    await s.ended();
    expect(s.sessions).toEqual([['EHLO verifier.milterkit.test', 'MAIL FROM:<>', 'RCPT TO:<good@example.test>', 'RSET', 'MAIL FROM:<>', 'RCPT TO:<bad@example.test>', 'QUIT']]);
  });

  it('pipelines RSET, MAIL and RCPT when the server offers PIPELINING, and reads each reply in order', async () => {
    const s = await server({ capabilities: ['PIPELINING'], reply: (line) => (line === 'RCPT TO:<bad@example.test>' ? '550 5.1.1 unknown' : undefined) });
    const results = await verifyAddresses(['good@example.test', 'bad@example.test', 'also@example.test'], setup(s.port));
    expect(results.map((r) => r.result)).toEqual(['valid', 'invalid', 'valid']);
    expect(results[1]).toMatchObject({ code: 550, enhancedStatus: '5.1.1' });
    // Commands of one transaction are written before any of their replies is read.
    const transcript = results[0]?.transcript ?? [];
    const afterEhlo = transcript.slice(transcript.findIndex((l) => l === 'C: RSET'));
    expect(afterEhlo.slice(0, 6)).toEqual(['C: RSET', 'C: MAIL FROM:<>', 'C: RCPT TO:<bad@example.test>', 'S: 250 2.0.0 ok', 'S: 250 2.0.0 ok', 'S: 550 5.1.1 unknown']);
    await s.ended();
    expect(s.sessions[0]?.filter((c) => c !== 'QUIT' && !c.startsWith('EHLO'))).toEqual(['MAIL FROM:<>', 'RCPT TO:<good@example.test>', 'RSET', 'MAIL FROM:<>', 'RCPT TO:<bad@example.test>', 'RSET', 'MAIL FROM:<>', 'RCPT TO:<also@example.test>']);
  });

  it('ends a session whose reply came too late, so that no later reply is read as another command\'s', async () => {
    // bob's MAIL is refused for now, and the 503 to the RCPT sent with it comes after the command timeout:
    // read later, it would pass for the catch-all probe's RSET reply and shift every reply after it.
    let mails = 0;
    const s = await server({
      capabilities: ['PIPELINING'],
      reply: (line) => {
        if (line.startsWith('MAIL')) return ++mails === 2 ? '452 4.3.1 try again later' : undefined;
        return line === 'RCPT TO:<bob@example.test>' ? { delayMs: 600, reply: '503 5.5.1 need MAIL' } : undefined;
      },
    });
    const results = await verifyAddresses(['alice@example.test', 'bob@example.test'], setup(s.port, { commandTimeoutMs: 300, detectCatchAll: true }));
    expect(results.map((r) => [r.result, r.detail])).toEqual([['valid', undefined], ['tempfail', 'temporary']]);
  });

  it('with PIPELINING, a refused null sender answers for every address, and the RCPT sent with it is not misread', async () => {
    const s = await server({ capabilities: ['PIPELINING'], reply: (line) => (line.startsWith('MAIL') ? '550 5.7.1 no bounces here' : line.startsWith('RCPT') ? '503 5.5.1 need MAIL' : undefined) });
    const results = await verifyAddresses(['a@example.test', 'b@example.test'], setup(s.port));
    expect(results.map((r) => [r.result, r.detail, r.code])).toEqual([
      ['unverifiable', 'null-sender-refused', 550],
      ['unverifiable', 'null-sender-refused', 550],
    ]);
    await s.ended();
    expect(s.sessions).toEqual([['EHLO verifier.milterkit.test', 'MAIL FROM:<>', 'RCPT TO:<a@example.test>', 'QUIT']]);
  });

  it('detects a catch-all domain with a random local part', async () => {
    const all = await server();
    const v = await verifyAddress('user@example.test', setup(all.port, { detectCatchAll: true }));
    expect(v).toMatchObject({ result: 'unverifiable', detail: 'catch-all' });
    expect(all.sessions[0]?.filter((c) => c.startsWith('RCPT'))).toHaveLength(2);
    const strict = await server({ reply: (line) => (line.startsWith('RCPT TO:<milterkit-') ? '550 5.1.1 unknown' : undefined) });
    expect((await verifyAddress('user@example.test', setup(strict.port, { detectCatchAll: true }))).result).toBe('valid');
  });

  it('does not probe a UTF-8 local part on a server without SMTPUTF8, and does with it', async () => {
    const plain = await server();
    const v = await verifyAddress('josé@example.test', setup(plain.port));
    expect(v).toMatchObject({ result: 'unverifiable', detail: 'smtputf8-unsupported' });
    expect(plain.sessions[0]?.some((c) => c.startsWith('RCPT'))).toBe(false);
    const utf8 = await server({ capabilities: ['SMTPUTF8'] });
    expect((await verifyAddress('josé@example.test', setup(utf8.port))).result).toBe('valid');
    expect(utf8.sessions[0]).toContain('MAIL FROM:<> SMTPUTF8');
  });
});

describe('verifyAddress: more scenarios', () => {
  it('treats MX hosts that all refuse service (554 greeting) as unverifiable, after QUIT', async () => {
    const s = await server({ greeting: '554 5.7.1 no service for you' });
    const v = await verifyAddress('user@example.test', setup(s.port, {}, '127.0.0.1'));
    expect(v).toMatchObject({ result: 'unverifiable', detail: 'no-service' });
    await s.ended();
    expect(s.sessions).toEqual([['QUIT'], ['QUIT']]);
  });

  it('gives tempfail when the server hangs up right after RCPT', async () => {
    const s = await server({ reply: (line) => (line.startsWith('RCPT') ? { close: true } : undefined) });
    expect((await verifyAddress('user@example.test', setup(s.port))).result).toBe('tempfail');
  });

  it('looks up and asks about an IDN domain in its A-label form', async () => {
    const s = await server();
    const resolver = fakeResolver({ 'xn--bcher-kva.test': { mx: [{ exchange: 'mx.xn--bcher-kva.test', priority: 5 }], a: { 'mx.xn--bcher-kva.test': ['127.0.0.1'] } } });
    const v = await verifyAddress('leser@bücher.test', { resolver, port: s.port, allowLoopback: true, cache: false, heloName: 'verifier.test' });
    expect(v.result).toBe('valid');
    expect(s.sessions[0]).toContain('RCPT TO:<leser@xn--bcher-kva.test>');
  });

  it('refuses to probe an MX that greets with our own name', async () => {
    const s = await server({ reply: (line) => (line.startsWith('EHLO') ? '250 verifier.milterkit.test hello' : undefined) });
    const v = await verifyAddress('user@example.test', setup(s.port));
    expect(v).toMatchObject({ result: 'unverifiable', detail: 'self-mx' });
    expect(s.sessions[0]?.some((c) => c.startsWith('MAIL'))).toBe(false);
  });

  it('upgrades to TLS when the server offers STARTTLS, and says EHLO again', async () => {
    const { SMTPServer } = await import('smtp-server');
    const tlsServer = new SMTPServer({ authOptional: true, logger: false, onRcptTo: (_a, _s, done) => done() });
    await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
    const port = (tlsServer as unknown as { server: { address(): { port: number } } }).server.address().port;
    try {
      const v = await verifyAddress('user@example.test', setup(port, {}, '127.0.0.1'));
      expect(v.result).toBe('valid');
      const commands = v.transcript.filter((l) => l.startsWith('C: '));
      expect(commands.slice(0, 4)).toEqual(['C: EHLO verifier.milterkit.test', 'C: STARTTLS', 'C: (TLS established)', 'C: EHLO verifier.milterkit.test']);
    } finally {
      await new Promise<void>((resolve) => tlsServer.close(() => resolve()));
    }
  });
});

describe('verifyAddress: etiquette', () => {
  it('paces new sessions to a domain at its per-minute rate', async () => {
    const s = await server();
    const options = setup(s.port, { maxSessionsPerMinutePerDomain: 120, timeoutMs: 3000 });
    const started = Date.now();
    // A fresh limiter (these settings are not used elsewhere) starts with 120 tokens: spend them, then one more.
    const addresses = Array.from({ length: 121 }, (_, i) => `pace${i}@example.test`);
    const results = await Promise.all(addresses.map((a) => verifyAddress(a, { ...options, maxConcurrentPerDomain: 60 })));
    expect(results.every((r) => r.result === 'valid')).toBe(true);
    // The 121st session waited for a token (half a second at 120 a minute).
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
  });
});
