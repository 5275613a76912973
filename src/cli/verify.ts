import { closeVerificationCaches, verifyAddress, type VerificationResult, type VerifyOptions } from '../cbv/index.js';

/** Exit codes of `milterkit verify`. */
export const VERIFY_EXIT: Readonly<Record<VerificationResult, number>> = { valid: 0, invalid: 3, tempfail: 4, unverifiable: 5 };

const USAGE = 'usage: milterkit verify ADDRESS [--json] [--helo NAME] [--port N] [--timeout MS] [--catch-all] [--probe-sender ADDR] [--allow-loopback] [--allow-private] [--cache redis://HOST:PORT/DB]';

export async function verifyCommand(args: string[], out: (line: string) => void): Promise<number> {
  const options: VerifyOptions = { cache: false };
  let json = false;
  let address: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const value = (): string => args[++i] ?? '';
    if (arg === '--json') json = true;
    else if (arg === '--helo') options.heloName = value();
    else if (arg === '--port') options.port = Number(value());
    else if (arg === '--timeout') options.timeoutMs = Number(value());
    else if (arg === '--catch-all') options.detectCatchAll = true;
    else if (arg === '--probe-sender') options.probeSender = value();
    else if (arg === '--allow-loopback') options.allowLoopback = true;
    else if (arg === '--allow-private') options.allowPrivate = true;
    else if (arg === '--cache') options.cache = value();
    else if (address === undefined && !arg.startsWith('--')) address = arg;
    else {
      out(USAGE);
      return 2;
    }
  }
  if (address === undefined || (options.port !== undefined && !(options.port > 0)) || (options.timeoutMs !== undefined && !(options.timeoutMs > 0))) {
    out(USAGE);
    return 2;
  }
  const v = await verifyAddress(address, options);
  await closeVerificationCaches();
  if (json) out(JSON.stringify(v, null, 2));
  else {
    out(`${v.address}: ${v.result}${v.detail ? ` (${v.detail})` : ''}`);
    out(`  ${v.code ?? ''} ${v.enhancedStatus ?? ''} ${v.message}`.replace(/\s+/g, ' ').trimEnd());
    if (v.mx) out(`  mx: ${v.mx}, ${v.durationMs} ms`);
  }
  return VERIFY_EXIT[v.result];
}
