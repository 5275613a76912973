/**
 * Defangs every message of a folder or a Maildir in place, keeping the originals aside, and prints a
 * summary. Changed messages are rewritten atomically; messages the policy quarantines or rejects are
 * moved out of the mailbox into the originals folder.
 *
 *   tsx examples/strip-attachments.ts MAILDIR_OR_FOLDER [--keep DIR] [--policy FILE]
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defang, parseMessage, readPolicyFile, type PolicyInput, type Verdict } from '../src/index.js';

export interface StripResult {
  file: string;
  verdict: Verdict;
  /** Reason codes, for the summary. */
  reasons: string[];
}

/** The message files: cur/ and new/ of a Maildir, or every regular file of a plain folder. */
function messageFiles(dir: string): string[] {
  const isMaildir = ['cur', 'new', 'tmp'].every((sub) => existsSync(join(dir, sub)));
  const folders = isMaildir ? [join(dir, 'cur'), join(dir, 'new')] : [dir];
  return folders.flatMap((folder) =>
    readdirSync(folder)
      .filter((name) => !name.startsWith('.') && statSync(join(folder, name)).isFile())
      .sort()
      .map((name) => join(folder, name)),
  );
}

export function stripFolder(dir: string, keepDir: string, policy: PolicyInput = {}): StripResult[] {
  const results: StripResult[] = [];
  for (const file of messageFiles(dir)) {
    const original = readFileSync(file);
    const msg = parseMessage(original);
    const report = defang(msg, policy);
    results.push({ file, verdict: report.verdict, reasons: [...new Set(report.parts.flatMap((p) => p.reasons.map((r) => r.code)))] });
    if (report.verdict === 'clean') continue;
    const aside = join(keepDir, report.verdict === 'changed' ? 'originals' : report.verdict);
    mkdirSync(aside, { recursive: true });
    if (report.verdict === 'changed') {
      writeFileSync(join(aside, basename(file)), original);
      // Write beside the message and rename over it: a reader never sees half a message.
      const temporary = `${file}.defang-tmp`;
      writeFileSync(temporary, msg.toBuffer());
      renameSync(temporary, file);
    } else {
      renameSync(file, join(aside, basename(file)));
    }
  }
  return results;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const dir = args.find((a, i) => !a.startsWith('--') && !['--keep', '--policy'].includes(args[i - 1] ?? ''));
  const option = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (!dir) {
    console.error('usage: strip-attachments MAILDIR_OR_FOLDER [--keep DIR] [--policy FILE]');
    process.exit(2);
  }
  const policy = option('--policy') ? await readPolicyFile(option('--policy') as string) : {};
  const results = stripFolder(dir, option('--keep') ?? join(dir, '.defang'), policy);
  for (const r of results) if (r.verdict !== 'clean') console.log(`${r.verdict.padEnd(10)} ${r.file}  ${r.reasons.join(',')}`);
  const count = (v: Verdict): number => results.filter((r) => r.verdict === v).length;
  console.log(`${results.length} messages: ${count('clean')} clean, ${count('changed')} changed, ${count('quarantine')} quarantined, ${count('reject')} rejected`);
}
