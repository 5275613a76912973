import { readFile, writeFile } from 'node:fs/promises';
import { createDsn, DsnSuppressedError, type DsnAction, type DsnRecipient, type TemplateName } from '../dsn/index.js';

/** Exit codes of `milterkit dsn`. */
export const DSN_EXIT = { created: 0, error: 1, usage: 2, suppressed: 3 } as const;

const USAGE = `usage: milterkit dsn --original FILE --reporting-mta HOST --mail-from ADDR
         --recipient ADDR:ACTION[:STATUS[:DIAGNOSTIC]]... [--template NAME] [--envid XTEXT]
         [--ret FULL|HDRS] [--smtputf8] [--remote-mta HOST] [-o OUT]`;

const ACTIONS = new Set<DsnAction>(['failed', 'delayed', 'delivered', 'relayed', 'expanded']);

function recipientFrom(spec: string, remoteMta: string | undefined): DsnRecipient | undefined {
  const [address, action, status, ...diagnostic] = spec.split(':');
  if (!address || !action || !ACTIONS.has(action as DsnAction)) return undefined;
  const recipient: DsnRecipient = { finalRecipient: address, action: action as DsnAction };
  if (status) recipient.status = status;
  if (diagnostic.length > 0) recipient.diagnosticCode = diagnostic.join(':');
  if (remoteMta) recipient.remoteMta = remoteMta;
  return recipient;
}

export async function dsnCommand(args: string[], out: (line: string) => void): Promise<number> {
  const values = new Map<string, string[]>();
  let smtputf8 = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--smtputf8') smtputf8 = true;
    else if (arg.startsWith('-') && i + 1 < args.length) values.set(arg, [...(values.get(arg) ?? []), args[++i] as string]);
    else {
      out(USAGE);
      return DSN_EXIT.usage;
    }
  }
  const one = (name: string): string | undefined => values.get(name)?.[0];
  const original = one('--original');
  const reportingMta = one('--reporting-mta');
  const mailFrom = one('--mail-from');
  const recipients = (values.get('--recipient') ?? []).map((spec) => recipientFrom(spec, one('--remote-mta')));
  const ret = one('--ret');
  if (!original || !reportingMta || mailFrom === undefined || recipients.length === 0 || recipients.includes(undefined) || (ret && ret !== 'FULL' && ret !== 'HDRS')) {
    out(USAGE);
    return DSN_EXIT.usage;
  }
  try {
    const dsn = createDsn({
      original: await readFile(original),
      reportingMta,
      recipients: recipients as DsnRecipient[],
      envelope: { mailFrom, envId: one('--envid'), ret: ret as 'FULL' | 'HDRS' | undefined, smtputf8 },
      template: one('--template') as TemplateName | undefined,
    });
    const target = one('-o');
    if (target && target !== '-') await writeFile(target, dsn);
    else process.stdout.write(dsn);
    return DSN_EXIT.created;
  } catch (err) {
    if (err instanceof DsnSuppressedError) {
      process.stderr.write(`milterkit dsn: not generated: ${err.reason}\n`);
      return DSN_EXIT.suppressed;
    }
    throw err;
  }
}
