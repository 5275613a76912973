import type { Readable } from 'node:stream';

/** The longest line of a plugin's output that is logged whole; the rest of a longer one is cut. */
const MAX_LINE = 4096;

/**
 * A plugin's output, as lines, each at most MAX_LINE characters: a plugin that writes a gigabyte with
 * no newline must not make the daemon hold it all (readline would, and then fail).
 */
export function outputLines(stream: Readable, line: (text: string) => void): void {
  let pending = '';
  let cut = 0;
  const flush = (): void => {
    line(cut > 0 ? `${pending}… (${cut} more characters cut)` : pending);
    pending = '';
    cut = 0;
  };
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    let start = 0;
    for (let end = chunk.indexOf('\n'); end >= 0; end = chunk.indexOf('\n', start)) {
      add(chunk.slice(start, end));
      flush();
      start = end + 1;
    }
    add(chunk.slice(start));
  });
  stream.on('end', () => {
    if (pending !== '' || cut > 0) flush();
  });
  function add(text: string): void {
    const room = MAX_LINE - pending.length;
    pending += text.slice(0, Math.max(room, 0));
    cut += Math.max(text.length - Math.max(room, 0), 0);
  }
}
