/**
 * V8 flags the daemon runs with; `npm start`, the `milterkit` command's shebang and the cluster's workers
 * pass them (a test keeps the three in agreement). They must be given when node starts: the heap is
 * configured before any of our code runs. `--initial-old-space-size` is one node refuses in NODE_OPTIONS:
 * only the command line can give it.
 *
 * Why: every socket read (and so the message body, held as views of them) is a Buffer outside V8's heap, which V8 frees
 * when a garbage collection finds it dead. The daemon allocates little on the heap itself, so two V8
 * defaults make it pay for those Buffers with full mark-compacts instead of cheap minor GCs:
 * - `--max-semi-space-size=4`: with node's default young generation (growing to 16 MiB per semi-space)
 *   minor GCs come too rarely to free the read Buffers in time, and the external-memory limit starts full
 *   GCs instead: about a third of the daemon's CPU at 100 KB. 4 MiB: none (CPU per 100 KB message -40%).
 * - `--initial-old-space-size=64`: V8 also starts a full GC when the old generation plus the external
 *   memory allocated since the last one reaches a limit derived from the (small) live heap — every 20 MB
 *   or so of message bodies, a full GC every ninth 1 MB message. Starting the old generation at 64 MiB
 *   leaves room for that churn: 5 full GCs per 1,500 messages of 1 MB instead of 150-170, CPU per
 *   message -30-45%, for about 25 MiB more resident memory (figures in the README).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--initial-old-space-size=64'];

/**
 * The flags whose option this process was not started with, on its command line or in NODE_OPTIONS (a
 * daemon started as `node dist/cli/main.js`). An option given with another value is the operator's
 * choice, and stays.
 */
export function missingNodeFlags(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((arg) => arg.split('=')[0]);
  return DAEMON_NODE_FLAGS.filter((flag) => !given.includes(flag.split('=')[0]));
}
