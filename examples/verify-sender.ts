/**
 * Verifies a list of sender addresses with one shared cache and prints a table: what a milter does for each
 * MAIL FROM, here for a batch (say, the senders of a mailing-list queue).
 *
 *   tsx examples/verify-sender.ts alice@example.com bob@example.org ...
 */
import { pathToFileURL } from 'node:url';
import { MemoryVerificationCache, verifyAddresses, type Verification, type VerifyOptions } from '../src/index.js';

export function table(results: readonly Verification[]): string {
  const rows = results.map((v) => [v.address, v.result, v.detail ?? '', `${v.code ?? ''} ${v.enhancedStatus ?? ''}`.trim(), v.mx ?? '', v.fromCache ? 'cache' : `${v.durationMs} ms`]);
  const header = ['address', 'result', 'detail', 'reply', 'mx', 'time'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [header, ...rows].map((r) => r.map((cell, i) => (cell ?? '').padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

/** One cache for the whole run: a domain's addresses share sessions, repeated addresses are not asked twice. */
export async function verifySenders(addresses: readonly string[], options: VerifyOptions = {}): Promise<Verification[]> {
  return verifyAddresses(addresses, { cache: new MemoryVerificationCache(), ...options });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const addresses = process.argv.slice(2);
  if (addresses.length === 0) {
    console.error('usage: verify-sender ADDRESS...');
    process.exit(2);
  }
  console.log(table(await verifySenders(addresses)));
}
