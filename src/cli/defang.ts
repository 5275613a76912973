import { createWriteStream } from 'node:fs';
import { defang, readPolicyFile, type PolicyInput, type Verdict } from '../defang/index.js';
import { parseFile, parseStream } from '../mime/index.js';

/** Exit codes of `milterkit defang`: scripts branch on them. */
export const DEFANG_EXIT: Readonly<Record<Verdict, number>> = { clean: 0, changed: 3, quarantine: 4, reject: 5 };

const USAGE = 'usage: milterkit defang FILE|- [-o OUT|-] [--policy FILE] [--json] [--sender ADDR] [--recipient ADDR]...';

interface Args {
  file: string;
  out?: string;
  policy?: string;
  json: boolean;
  sender?: string;
  recipients: string[];
}

function parseArgs(args: string[]): Args | undefined {
  const parsed: Args = { file: '', json: false, recipients: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const value = (): string | undefined => args[++i];
    if (arg === '--json') parsed.json = true;
    else if (arg === '-o' || arg === '--output') parsed.out = value();
    else if (arg === '--policy') parsed.policy = value();
    else if (arg === '--sender') parsed.sender = value();
    else if (arg === '--recipient') parsed.recipients.push(value() ?? '');
    else if (parsed.file === '' && (arg === '-' || !arg.startsWith('-'))) parsed.file = arg;
    else return undefined;
  }
  return parsed.file === '' ? undefined : parsed;
}

export async function defangCommand(args: string[], out: (line: string) => void): Promise<number> {
  const parsed = parseArgs(args);
  if (!parsed) {
    out(USAGE);
    return 2;
  }
  const policy: PolicyInput = parsed.policy ? await readPolicyFile(parsed.policy) : {};
  const msg = parsed.file === '-' ? await parseStream(process.stdin) : await parseFile(parsed.file);
  const report = defang(msg, policy, { envelope: { sender: parsed.sender, recipients: parsed.recipients } });
  if (parsed.out !== undefined) {
    const stream = parsed.out === '-' ? process.stdout : createWriteStream(parsed.out);
    await msg.writeTo(stream);
    if (stream !== process.stdout) await new Promise<void>((resolve, reject) => stream.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
  // With the message on stdout, the report goes to stderr so the two never mix.
  const print = parsed.out === '-' ? (line: string) => process.stderr.write(line + '\n') : out;
  if (parsed.json) print(JSON.stringify(report, null, 2));
  else {
    print(`verdict: ${report.verdict}`);
    for (const p of report.parts) {
      print(`  ${p.path === '' ? '(root)' : p.path}  ${p.declaredType} (${p.sniffedType})  ${p.action}  ${p.names.map((n) => `"${n}"`).join(' ')}`);
      for (const r of p.reasons) print(`    ${r.code}${r.detail === undefined ? '' : `: ${r.detail}`}`);
    }
  }
  return DEFANG_EXIT[report.verdict];
}
