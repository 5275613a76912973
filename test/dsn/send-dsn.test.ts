import type { MxRecord } from 'node:dns';
import net from 'node:net';
import { SMTPServer, type SMTPServerAddress, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { resolveMxRoute, type MxResolver } from '../../src/smtp/mx-route.js';
import { sendDsn, type SendDsnResult } from '../../src/dsn/send-dsn.js';

// Every server binds 127.0.0.1 on a random port and is closed after its test; every test is bounded.
const TEST_TIMEOUT = 10_000;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((cleanup) => cleanup()));
});

/** A DSN-shaped message whose body has the lines SMTP must dot-stuff: ".", "..", ".x". */
const DSN = Buffer.from(
  'From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\nTo: alice@example.com\r\n' +
    'Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n' +
    'Content-Type: text/plain; charset=us-ascii\r\n\r\n' +
    'Your message could not be delivered.\r\n.\r\n..\r\n.leading dot\r\nend\r\n',
);

interface Recorded {
  connections: number;
  commands: string[];
  sessions: SMTPServerSession[];
  mailFrom: SMTPServerAddress[];
  rcptTo: SMTPServerAddress[];
  data: Buffer[];
}

interface ServerScript {
  /** Reply to the connection instead of the 220 greeting. */
  greeting?: (connection: number) => { code: number; text: string } | undefined;
  rcpt?: { code: number; text: string };
  endOfData?: { code: number; text: string };
  server?: SMTPServerOptions;
}

function smtpError(reply: { code: number; text: string }): Error {
  return Object.assign(new Error(reply.text), { responseCode: reply.code });
}

/** A real smtp-server that records the transaction; STARTTLS is off unless `script.server` turns it on. */
async function startServer(script: ServerScript = {}): Promise<{ port: number; recorded: Recorded }> {
  const recorded: Recorded = { connections: 0, commands: [], sessions: [], mailFrom: [], rcptTo: [], data: [] };
  const record = (_entry: unknown, message: unknown, line: unknown): void => {
    if (message === 'C:' && typeof line === 'string') recorded.commands.push(line);
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    closeTimeout: 500,
    disableReverseLookup: true,
    logger: { debug: record, info: () => {}, warn: () => {}, error: () => {}, trace: () => {}, fatal: () => {} },
    onConnect(_session, callback) {
      recorded.connections += 1;
      const reply = script.greeting?.(recorded.connections);
      callback(reply ? smtpError(reply) : null);
    },
    onMailFrom(address, _session, callback) {
      recorded.mailFrom.push(address);
      callback();
    },
    onRcptTo(address, _session, callback) {
      recorded.rcptTo.push(address);
      callback(script.rcpt ? smtpError(script.rcpt) : null);
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        recorded.data.push(Buffer.concat(chunks));
        recorded.sessions.push(session);
        callback(script.endOfData ? smtpError(script.endOfData) : null);
      });
    },
    ...script.server,
  });
  server.on('error', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.server.address() as net.AddressInfo).port, recorded };
}

/** Accepts connections and never says a word. */
async function startSilentServer(): Promise<{ port: number; connections: () => number }> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    sockets.add(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections };
}

/** A port nothing listens on: bound once, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function dnsError(code: string): Error {
  return Object.assign(new Error(`query failed: ${code}`), { code });
}

interface Zone {
  mx?: Record<string, MxRecord[] | string>;
  a?: Record<string, string[] | string>;
  aaaa?: Record<string, string[] | string>;
}

/** A resolver over a fixed zone; a string answer is the error code to fail with. Records every query. */
function fakeResolver(zone: Zone): MxResolver & { queries: string[] } {
  const queries: string[] = [];
  const answer = async <T>(type: string, name: string, value: T | string | undefined, missing: string): Promise<T> => {
    queries.push(`${type} ${name}`);
    const found = value ?? missing;
    if (typeof found === 'string') throw dnsError(found);
    return found;
  };
  return {
    queries,
    resolveMx: (name) => answer('MX', name, zone.mx?.[name], 'ENOTFOUND'),
    resolve4: (name) => answer('A', name, zone.a?.[name], 'ENODATA'),
    resolve6: (name) => answer('AAAA', name, zone.aaaa?.[name], 'ENODATA'),
  };
}

const relay = (port: number) => ({ host: '127.0.0.1', port });

describe('sendDsn over a relay', { timeout: TEST_TIMEOUT }, () => {
  it('sends MAIL FROM:<> to the recipient with the exact bytes, dot-stuffed on the wire', async () => {
    const { port, recorded } = await startServer();
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(port), heloName: 'mx.example.org' });

    expect(result).toEqual({ status: 'sent', code: 250, response: expect.stringMatching(/^250 /), host: '127.0.0.1' });
    // smtp-server reports the null reverse-path as '' ("MAIL FROM:<undefined>" would fail its address syntax check).
    expect(recorded.mailFrom.map((address) => address.address)).toEqual(['']);
    expect(recorded.commands).toContain('MAIL FROM:<>');
    expect(recorded.commands.some((line) => /undefined/.test(line))).toBe(false);
    expect(recorded.commands).toContain('RCPT TO:<alice@example.com>');
    expect(recorded.rcptTo.map((address) => address.address)).toEqual(['alice@example.com']);
    expect(recorded.commands).toContain('EHLO mx.example.org');
    // smtp-server removes the dot-stuffing: the lone "." line did not end DATA early and ".." arrived as "..".
    expect(recorded.data).toHaveLength(1);
    expect(recorded.data[0]?.equals(DSN)).toBe(true);
    // QUIT follows the result, which does not wait for it.
    await vi.waitFor(() => expect(recorded.commands).toContain('QUIT'));
  });

  it('sends 8-bit bytes unchanged and declares BODY=8BITMIME', async () => {
    const { port, recorded } = await startServer();
    const eightBit = Buffer.concat([DSN, Buffer.from([0x4a, 0x6f, 0x73, 0xc3, 0xa9, 0x0d, 0x0a])]);
    const result = await sendDsn(eightBit, { to: '<alice@example.com>', relay: relay(port) });

    expect(result.status).toBe('sent');
    expect(recorded.commands).toContain('MAIL FROM:<> BODY=8BITMIME');
    expect(recorded.data[0]?.equals(eightBit)).toBe(true);
  });

  it('reports a 550 at RCPT as a permanent failure and sends no DATA', async () => {
    const { port, recorded } = await startServer({ rcpt: { code: 550, text: '5.1.1 No such user' } });
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(port) });

    expect(result).toMatchObject({ status: 'permanent-failure', code: 550, host: '127.0.0.1' });
    expect(result.response).toBe('550 5.1.1 No such user');
    expect(recorded.data).toHaveLength(0);
  });

  it('reports a 451 at RCPT as a temporary failure', async () => {
    const { port } = await startServer({ rcpt: { code: 451, text: '4.7.1 Greylisted, try again later' } });
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(port) });

    expect(result).toMatchObject({ status: 'temporary-failure', code: 451, response: '451 4.7.1 Greylisted, try again later' });
  });

  it('reports a 554 after the data as a permanent failure', async () => {
    const { port } = await startServer({ endOfData: { code: 554, text: '5.7.1 Message rejected' } });
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(port) });

    expect(result).toMatchObject({ status: 'permanent-failure', code: 554 });
  });

  it('reports a 421 greeting as a temporary failure', async () => {
    const { port } = await startServer({ greeting: () => ({ code: 421, text: 'Too busy' }) });
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(port) });

    expect(result).toMatchObject({ status: 'temporary-failure', code: 421 });
  });

  it('reports a refused connection as a temporary failure', async () => {
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(await closedPort()) });

    expect(result.status).toBe('temporary-failure');
    expect(result.code).toBeUndefined();
    expect(result.response).toMatch(/ECONNREFUSED/);
  });

  it('gives up on a server that never greets within the budget', async () => {
    const silent = await startSilentServer();
    const started = Date.now();
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(silent.port), timeoutMs: 300 });

    expect(result.status).toBe('temporary-failure');
    expect(silent.connections()).toBe(1);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it.each([
    ['an empty recipient', ''],
    ['the null reverse-path', '<>'],
    ['CR/LF injection', 'alice@example.com>\r\nRCPT TO:<victim@example.net'],
    ['a bare LF', 'alice@example.com\nDATA'],
    ['a NUL byte', 'alice\0@example.com'],
    ['no domain', 'alice'],
    ['an empty domain', 'alice@'],
    ['a single-label domain', 'root@localhost'],
    ['an address literal', 'alice@[127.0.0.1]'],
    ['a space', 'alice @example.com'],
  ])('refuses %s without connecting', async (_name, to) => {
    const { port, recorded } = await startServer();
    const result = await sendDsn(DSN, { to, relay: relay(port) });

    expect(result.status).toBe('permanent-failure');
    expect(result.code).toBeUndefined();
    expect(result.response).toMatch(/^Not sent: /);
    expect(recorded.connections).toBe(0);
  });
});

describe('STARTTLS', { timeout: TEST_TIMEOUT }, () => {
  // smtp-server's built-in certificate is self-signed: opportunistic TLS must not reject it.
  const withStartTls: SMTPServerOptions = { disabledCommands: ['AUTH'], logger: false };

  it('upgrades when offered, despite an untrusted certificate', async () => {
    const { port, recorded } = await startServer({ server: withStartTls });
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(port) });

    expect(result.status).toBe('sent');
    expect(recorded.sessions[0]?.secure).toBe(true);
    expect(recorded.data[0]?.equals(DSN)).toBe(true);
  });

  it('stays in cleartext with opportunisticTls: false', async () => {
    const { port, recorded } = await startServer({ server: withStartTls });
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(port), opportunisticTls: false });

    expect(result.status).toBe('sent');
    expect(recorded.sessions[0]?.secure).toBe(false);
  });

  it('retries in cleartext when the handshake fails', async () => {
    // TLS 1.0 only: node's client refuses it, so the handshake fails after STARTTLS was accepted.
    const { port, recorded } = await startServer({ server: { ...withStartTls, minVersion: 'TLSv1', maxVersion: 'TLSv1' } });
    const result = await sendDsn(DSN, { to: 'alice@example.com', relay: relay(port) });

    expect(result.status).toBe('sent');
    expect(recorded.connections).toBe(2);
    expect(recorded.sessions.map((session) => session.secure)).toEqual([false]);
  });
});

describe('sendDsn to the MX', { timeout: TEST_TIMEOUT }, () => {
  it('falls back to the next MX when the first refuses the connection', async () => {
    const { port, recorded } = await startServer();
    // Nothing listens on 127.0.0.2 (the server binds 127.0.0.1 only), so mx1 refuses the connection.
    const resolver = fakeResolver({
      mx: { 'example.com': [{ exchange: 'mx2.example.com', priority: 20 }, { exchange: 'mx1.example.com', priority: 10 }] },
      a: { 'mx1.example.com': ['127.0.0.2'], 'mx2.example.com': ['127.0.0.1'] },
    });
    const result = await sendDsn(DSN, { to: 'alice@example.com', resolver, port });

    expect(result).toMatchObject({ status: 'sent', code: 250, host: 'mx2.example.com' });
    expect(recorded.mailFrom.map((address) => address.address)).toEqual(['']);
    expect(recorded.data[0]?.equals(DSN)).toBe(true);
  });

  it('moves on to the next MX after a 421 greeting', async () => {
    const { port, recorded } = await startServer({ greeting: (n) => (n === 1 ? { code: 421, text: 'Try later' } : undefined) });
    const resolver = fakeResolver({
      mx: { 'example.com': [{ exchange: 'mx1.example.com', priority: 10 }, { exchange: 'mx2.example.com', priority: 20 }] },
      a: { 'mx1.example.com': ['127.0.0.1'], 'mx2.example.com': ['127.0.0.1'] },
    });
    const result = await sendDsn(DSN, { to: 'alice@example.com', resolver, port });

    expect(result).toMatchObject({ status: 'sent', host: 'mx2.example.com' });
    expect(recorded.connections).toBe(2);
  });

  it('does not try another MX once the transaction has been answered', async () => {
    const { port, recorded } = await startServer({ rcpt: { code: 550, text: '5.1.1 No such user' } });
    const resolver = fakeResolver({
      mx: { 'example.com': [{ exchange: 'mx1.example.com', priority: 10 }, { exchange: 'mx2.example.com', priority: 20 }] },
      a: { 'mx1.example.com': ['127.0.0.1'], 'mx2.example.com': ['127.0.0.1'] },
    });
    const result = await sendDsn(DSN, { to: 'alice@example.com', resolver, port });

    expect(result).toMatchObject({ status: 'permanent-failure', code: 550, host: 'mx1.example.com' });
    expect(recorded.connections).toBe(1);
  });

  it('reports a temporary failure when every MX fails, preferring it over a later 5xx greeting', async () => {
    const { port } = await startServer({ greeting: () => ({ code: 554, text: 'No service' }) });
    const resolver = fakeResolver({
      mx: { 'example.com': [{ exchange: 'mx1.example.com', priority: 10 }, { exchange: 'mx2.example.com', priority: 20 }] },
      a: { 'mx1.example.com': ['127.0.0.2'], 'mx2.example.com': ['127.0.0.1'] },
    });
    const result = await sendDsn(DSN, { to: 'alice@example.com', resolver, port });

    expect(result).toMatchObject({ status: 'temporary-failure', host: 'mx1.example.com' });
    expect(result.response).toMatch(/ECONNREFUSED/);
  });

  it('reports a permanent failure when every MX answers 5xx at connect', async () => {
    const { port } = await startServer({ greeting: () => ({ code: 554, text: 'No service' }) });
    const resolver = fakeResolver({ mx: { 'example.com': [{ exchange: 'mx1.example.com', priority: 10 }] }, a: { 'mx1.example.com': ['127.0.0.1'] } });
    const result = await sendDsn(DSN, { to: 'alice@example.com', resolver, port });

    expect(result).toMatchObject({ status: 'permanent-failure', code: 554, response: '554 No service', host: 'mx1.example.com' });
  });

  it('keeps to the budget across silent MX hosts', async () => {
    const silent = await startSilentServer();
    const resolver = fakeResolver({
      mx: { 'example.com': [{ exchange: 'mx1.example.com', priority: 10 }, { exchange: 'mx2.example.com', priority: 20 }] },
      a: { 'mx1.example.com': ['127.0.0.1'], 'mx2.example.com': ['127.0.0.1'] },
    });
    const started = Date.now();
    const result = await sendDsn(DSN, { to: 'alice@example.com', resolver, port: silent.port, timeoutMs: 400 });

    expect(result.status).toBe('temporary-failure');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('delivers to the implicit MX (the domain A record) when there is no MX', async () => {
    const { port, recorded } = await startServer();
    const resolver = fakeResolver({ mx: { 'example.com': 'ENODATA' }, a: { 'example.com': ['127.0.0.1'] } });
    const result = await sendDsn(DSN, { to: 'alice@example.com', resolver, port });

    expect(result).toMatchObject({ status: 'sent', host: 'example.com' });
    expect(recorded.data).toHaveLength(1);
  });

  it('delivers to the A-label of an IDN domain', async () => {
    const { port, recorded } = await startServer();
    const resolver = fakeResolver({ mx: { 'xn--bcher-kva.example': [{ exchange: 'mx.example.com', priority: 0 }] }, a: { 'mx.example.com': ['127.0.0.1'] } });
    const result = await sendDsn(DSN, { to: 'alice@bücher.example', resolver, port });

    expect(result.status).toBe('sent');
    expect(recorded.commands).toContain('RCPT TO:<alice@xn--bcher-kva.example>');
  });

  it.each<[string, Zone, SendDsnResult['status'], RegExp]>([
    ['null MX', { mx: { 'example.com': [{ exchange: '', priority: 0 }] } }, 'permanent-failure', /null MX/],
    ['NXDOMAIN', { mx: { 'example.com': 'ENOTFOUND' } }, 'permanent-failure', /NXDOMAIN/],
    ['SERVFAIL', { mx: { 'example.com': 'ESERVFAIL' } }, 'temporary-failure', /ESERVFAIL/],
    ['no MX and no address', { mx: { 'example.com': 'ENODATA' } }, 'permanent-failure', /no MX and no A\/AAAA/],
  ])('%s is reported without connecting', async (_name, zone, status, response) => {
    const { port, recorded } = await startServer();
    const resolver = fakeResolver(zone);
    const result = await sendDsn(DSN, { to: 'alice@example.com', resolver, port });

    expect(result.status).toBe(status);
    expect(result.response).toMatch(response);
    expect(result.code).toBeUndefined();
    expect(recorded.connections).toBe(0);
  });

  it('null MX: looks up no address at all', async () => {
    const resolver = fakeResolver({ mx: { 'example.com': [{ exchange: '', priority: 0 }] } });
    await sendDsn(DSN, { to: 'alice@example.com', resolver });

    expect(resolver.queries).toEqual(['MX example.com']);
  });
});

describe('resolveMxRoute', () => {
  it('orders by preference, IPv4 before IPv6, and leaves out hosts without an address', async () => {
    const resolver = fakeResolver({
      mx: {
        'example.com': [
          { exchange: 'backup.example.com.', priority: 20 },
          { exchange: 'gone.example.com', priority: 5 },
          { exchange: 'MX.example.com', priority: 10 },
        ],
      },
      a: { 'mx.example.com': ['192.0.2.1'], 'backup.example.com': ['192.0.2.2'], 'gone.example.com': 'ENOTFOUND' },
      aaaa: { 'mx.example.com': ['2001:db8::1'] },
    });

    expect(await resolveMxRoute('example.com', resolver)).toEqual({
      hosts: [
        { host: 'mx.example.com', addresses: ['192.0.2.1', '2001:db8::1'] },
        { host: 'backup.example.com', addresses: ['192.0.2.2'] },
      ],
    });
  });

  it('shuffles MX hosts of equal preference', async () => {
    const resolver = fakeResolver({
      mx: {
        'example.com': [
          { exchange: 'a.example.com', priority: 10 },
          { exchange: 'b.example.com', priority: 10 },
          { exchange: 'first.example.com', priority: 5 },
        ],
      },
      a: { 'a.example.com': ['192.0.2.1'], 'b.example.com': ['192.0.2.2'], 'first.example.com': ['192.0.2.3'] },
    });
    const orders = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const route = await resolveMxRoute('example.com', resolver);
      if (!('hosts' in route)) throw new Error('expected hosts');
      orders.add(route.hosts.map((host) => host.host).join(' '));
    }

    expect([...orders].sort()).toEqual(['first.example.com a.example.com b.example.com', 'first.example.com b.example.com a.example.com']);
  });

  it('ignores a null MX mixed with real ones', async () => {
    const resolver = fakeResolver({
      mx: { 'example.com': [{ exchange: '', priority: 0 }, { exchange: 'mx.example.com', priority: 10 }] },
      a: { 'mx.example.com': ['192.0.2.1'] },
    });

    expect(await resolveMxRoute('example.com', resolver)).toEqual({ hosts: [{ host: 'mx.example.com', addresses: ['192.0.2.1'] }] });
  });

  it('is temporary when no MX host has an address and one lookup failed', async () => {
    const resolver = fakeResolver({
      mx: { 'example.com': [{ exchange: 'mx1.example.com', priority: 10 }, { exchange: 'mx2.example.com', priority: 20 }] },
      a: { 'mx1.example.com': 'ENOTFOUND', 'mx2.example.com': 'ETIMEOUT' },
    });

    expect(await resolveMxRoute('example.com', resolver)).toEqual({ temporary: 'mx2.example.com: address lookup failed (ETIMEOUT)' });
  });

  it('is permanent when no MX host has an address', async () => {
    const resolver = fakeResolver({ mx: { 'example.com': [{ exchange: 'mx1.example.com', priority: 10 }] }, a: { 'mx1.example.com': 'ENOTFOUND' } });

    expect(await resolveMxRoute('example.com', resolver)).toEqual({ permanent: 'example.com: no MX host has an address' });
  });
});
