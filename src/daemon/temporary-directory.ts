import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BODY_FILE_PREFIX } from '../milter/body-buffer.js';

/** Whether a process of that ID exists (one of another user's counts). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Makes the directory for spilled bodies ready: created private if missing; refused if it is a link,
 * belongs to another user or lets others write in it (they could plant or read bodies there).
 */
export async function prepareTemporaryDirectory(path: string): Promise<void> {
  await mkdir(path, { recursive: true, mode: 0o700 });
  const info = await lstat(path);
  if (!info.isDirectory()) throw new Error(`temporaryDirectory ${path}: not a directory (a link is refused)`);
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid) throw new Error(`temporaryDirectory ${path}: belongs to user ${info.uid}, not to this daemon's (${uid})`);
  if ((info.mode & 0o022) !== 0) throw new Error(`temporaryDirectory ${path}: others may write in it (mode ${(info.mode & 0o777).toString(8)}); make it 700`);
}

/**
 * At start only: removes the bodies that a daemon killed without a chance to clean up (kill -9, a crash,
 * a power cut) left behind — files of processes that no longer exist, and of this process's own ID (a
 * restarted daemon may get its predecessor's, in a container), since it has written none yet. Returns
 * how many went.
 */
export function sweepOrphans(path: string): Promise<number> {
  return sweepBodies(path, (pid) => pid === process.pid || !alive(pid));
}

/** Removes the spilled bodies whose writer `orphaned` says is gone; returns how many. */
export async function sweepBodies(path: string, orphaned: (pid: number) => boolean): Promise<number> {
  let swept = 0;
  for (const name of await readdir(path)) {
    const pid = Number(/^(\d+)-/.exec(name.slice(BODY_FILE_PREFIX.length))?.[1]);
    if (!name.startsWith(BODY_FILE_PREFIX) || !Number.isInteger(pid) || !orphaned(pid)) continue;
    await rm(join(path, name), { force: true });
    swept++;
  }
  return swept;
}
