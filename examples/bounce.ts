/**
 * Builds a failure DSN for a stored message and sends it (MAIL FROM:<>) to an SMTP server: what an MTA
 * does when it gives up on a recipient after accepting the message.
 *
 *   tsx examples/bounce.ts STORED.eml --mail-from ADDR --recipient ADDR --reason "550 5.1.1 no such user"
 *       --relay HOST:PORT [--reporting-mta HOST]
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { pathToFileURL } from 'node:url';
import { createDsn, DsnSuppressedError, sendDsn, type SendDsnResult } from '../src/index.js';

export interface BounceRequest {
  original: Buffer;
  mailFrom: string;
  recipient: string;
  reason: string;
  relay: { host: string; port: number };
  reportingMta?: string;
}

export async function bounce(request: BounceRequest): Promise<SendDsnResult | { status: 'suppressed'; reason: string }> {
  let dsn: Buffer;
  try {
    dsn = createDsn({
      original: request.original,
      reportingMta: request.reportingMta ?? hostname(),
      envelope: { mailFrom: request.mailFrom },
      recipients: [{ finalRecipient: request.recipient, action: 'failed', diagnosticCode: request.reason }],
    });
  } catch (err) {
    if (err instanceof DsnSuppressedError) return { status: 'suppressed', reason: err.reason };
    throw err;
  }
  return sendDsn(dsn, { to: request.mailFrom, relay: request.relay, timeoutMs: 30_000 });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const option = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const [file] = args;
  const [host, port] = (option('--relay') ?? '').split(':');
  const mailFrom = option('--mail-from');
  const recipient = option('--recipient');
  if (!file || !host || !port || mailFrom === undefined || !recipient) {
    console.error('usage: bounce STORED.eml --mail-from ADDR --recipient ADDR --relay HOST:PORT [--reason TEXT] [--reporting-mta HOST]');
    process.exit(2);
  }
  const result = await bounce({
    original: readFileSync(file),
    mailFrom,
    recipient,
    reason: option('--reason') ?? '550 5.1.1 The email account that you tried to reach does not exist',
    relay: { host, port: Number(port) },
    reportingMta: option('--reporting-mta'),
  });
  console.log(JSON.stringify(result));
  process.exit(result.status === 'sent' ? 0 : 1);
}
