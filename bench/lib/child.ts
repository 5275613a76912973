import { spawn } from 'node:child_process';

/**
 * Runs this same script again as `<script> --child <area> <json spec>` in a fresh process and resolves
 * with the one message that process sends back (see replyToParent).
 *
 * The child is started through a small /bin/sh, not forked from here: Linux keeps a process's peak RSS
 * across exec, so a child forked straight from this process would report our RSS as its own maxRSS. Forked
 * by sh, it inherits only sh's megabyte. `; exit $?` keeps the shell from exec-ing node in its own place.
 */
export function runChild<T>(area: string, spec: unknown): Promise<T> {
  const script = process.argv[1];
  if (script === undefined) throw new Error('cannot tell which script to run as the child');
  // execArgv carries tsx's loader flags; --expose-gc lets the child collect before taking its baseline.
  const node = [process.execPath, ...process.execArgv, '--expose-gc', script, '--child', area, JSON.stringify(spec)];
  const child = spawn('/bin/sh', ['-c', '"$@"; exit $?', 'sh', ...node], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    let reply: { value: T } | undefined;
    child.on('message', (message) => (reply = { value: message as T }));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (reply) resolve(reply.value);
      else reject(new Error(`child ${area} ${JSON.stringify(spec)} ended with ${signal ?? `exit code ${code}`} and no result`));
    });
  });
}

/** Sends the child's result to the parent and exits, so a library's leftover timers cannot keep it alive. */
export function replyToParent(result: unknown): void {
  if (!process.send) throw new Error('--child is for the bench runner; run bench/run.ts without it');
  process.send(result, undefined, undefined, () => process.exit(0));
}
