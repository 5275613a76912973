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

/** The flags missing from this process's own (a daemon started as `node dist/cli/main.js`). */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return DAEMON_NODE_FLAGS.filter((flag) => !execArgv.includes(flag));
}
