/**
 * A small filter of one's own: it adds an X-Scanned-By header, refuses messages whose subject says
 * "unsubscribe me from life", and leaves everything else alone. Run it as a milter, or test it with
 * runMilter() without any MTA (test/examples/custom-milter.test.ts).
 *
 *   tsx examples/custom-milter.ts [inet:9900@127.0.0.1 | unix:/run/milterkit/custom.sock]
 */
import { pathToFileURL } from 'node:url';
import { startMilterServer, type FilterFactory } from '../src/index.js';

export const customFilter: FilterFactory = (context) => {
  let subject = '';
  return {
    envFrom() {
      subject = '';
    },
    header(name, value) {
      if (name.toLowerCase() === 'subject') subject = value.toString('utf8').trim();
    },
    eom(changes) {
      if (/unsubscribe me from life/i.test(subject)) return { reply: '550 5.7.1 We do not deliver that here' };
      changes.addHeader('X-Scanned-By', `custom-milter (queue ${context.macro('i') ?? 'unknown'})`);
      return 'continue';
    },
  };
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const server = await startMilterServer({ listen: process.argv[2] ?? 'inet:9900@127.0.0.1', filter: customFilter });
  console.log(`custom milter listening on ${JSON.stringify(server.address)}`);
  process.once('SIGTERM', () => void server.close());
}
