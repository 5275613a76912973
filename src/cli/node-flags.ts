/**
 * V8 flags the daemon runs with; `npm start`, the `milterkit` command's shebang and the cluster's workers
 * pass them (a test keeps the three in agreement). They must be given when node starts: the heap is
 * configured before any of our code runs.
 *
 * Why: every socket read, and the copy of each body chunk, is a Buffer outside V8's heap. V8 frees
 * young ones at a minor GC, which comes when the young generation fills; with node's default (it grows
 * to 16 MiB per semi-space) a daemon that allocates little on the heap but reads 100 KB messages meets the
 * external-memory limit first, and that limit starts a full mark-compact — tens of them a second, about a
 * third of the daemon's CPU at 100 KB. With 4 MiB semi-spaces the cheap minor GCs come soon enough to
 * free those Buffers and no full GC is needed (measured in the README: CPU per 100 KB message -40%).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

/**
 * The flags whose option this process was not started with, on its command line or in NODE_OPTIONS (a
 * daemon started as `node dist/cli/main.js`). An option given with another value is the operator's
 * choice, and stays.
 */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((arg) => arg.split('=')[0]);
  return DAEMON_NODE_FLAGS.filter((flag) => !given.includes(flag.split('=')[0]));
}
