import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterEach, describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';

interface Transaction {
  from: string | false;
  to: string[];
  data: Buffer;
}

/** A real SMTP server on loopback that records what it is sent. */
async function recordingServer(): Promise<{ port: number; transactions: Transaction[]; close: () => Promise<void> }> {
  const transactions: Transaction[] = [];
  let current: Transaction = { from: false, to: [], data: Buffer.alloc(0) };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onMailFrom(address, _session, done) {
      current = { from: address.address, to: [], data: Buffer.alloc(0) };
      done();
    },
    onRcptTo(address, _session, done) {
      current.to.push(address.address);
      done();
    },
    onData(stream, _session, done) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        current.data = Buffer.concat(chunks);
        transactions.push(current);
        done();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = ((server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
  return { port, transactions, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

describe('examples/bounce', () => {
  it('builds a failure DSN for a stored message and sends it with MAIL FROM:<> to the sender', async () => {
    const server = await recordingServer();
    const dir = mkdtempSync(join(tmpdir(), 'bounce-'));
    cleanup = async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    };
    const stored = join(dir, 'stored.eml');
    writeFileSync(stored, 'From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: figures\r\nMessage-ID: <q@example.com>\r\n\r\nHello\r\n');
    // Asynchronously: the SMTP server runs in this process and must keep answering.
    const { stdout: out } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'examples/bounce.ts', stored, '--mail-from', 'alice@example.com', '--recipient', 'bob@example.org', '--relay', `127.0.0.1:${server.port}`, '--reporting-mta', 'mx.example.org'],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(out).status).toBe('sent');
    expect(server.transactions.length).toBe(1);
    const [t] = server.transactions;
    expect(t?.from).toBe('');
    expect(t?.to).toEqual(['alice@example.com']);
    const dsn = parseMessage(t?.data ?? Buffer.alloc(0));
    expect(dsn.root.contentType).toBe('multipart/report');
    expect(dsn.headers.get('in-reply-to')).toBe('<q@example.com>');
    expect(dsn.part('2')?.text()).toContain('Final-Recipient: rfc822; bob@example.org');
    expect(dsn.part('3')?.headers.get('subject')).toBeUndefined();
    expect(dsn.part('3.1')?.headers.get('subject')).toBe('figures');
  });
});
