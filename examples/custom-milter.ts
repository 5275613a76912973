/**
 * A plugin of one's own for the daemon's pipeline: it adds an X-Scanned-By header, refuses messages whose
 * subject matches a pattern, and leaves everything else alone. Plug it into `milterkit milter` with a config
 * file (the module compiled to JavaScript, or loaded through a TypeScript loader such as tsx):
 *
 *   { "pipeline": [ { "plugin": "defang" },
 *                   { "plugin": "module", "path": "./custom-milter.js", "options": { "refuseSubject": "unsubscribe me from life" } } ] }
 *
 * or run it on its own, after defang, as a milter:
 *
 *   tsx examples/custom-milter.ts [inet:9900@127.0.0.1 | unix:/run/milterkit/custom.sock]
 *
 * test/examples/custom-milter.test.ts tests it with runMilter() (no MTA) and inside the daemon behind Postfix.
 */
import { pathToFileURL } from 'node:url';
import { defangPlugin, messageFilter, pipeline, startMilterServer, type MilterPlugin } from '../src/index.js';

export interface CustomOptions {
  /** A case-insensitive regular expression; a message whose subject matches is refused. */
  refuseSubject?: string;
}

export default function customPlugin(options: unknown = {}): MilterPlugin {
  const { refuseSubject = 'unsubscribe me from life' } = options as CustomOptions;
  const refuse = new RegExp(refuseSubject, 'i');
  return {
    name: 'custom',
    check(message, envelope) {
      if (refuse.test(message.headers.get('subject') ?? '')) return { action: 'reject', reply: '550 5.7.1 We do not deliver that here', log: { custom: 'refused' } };
      message.headers.add('X-Scanned-By', `custom-milter (queue ${envelope.queueId ?? 'unknown'})`);
      return { action: 'accept', changed: true, log: { custom: 'scanned' } };
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const filter = messageFilter(pipeline([defangPlugin(), customPlugin()], (fields) => console.log(JSON.stringify(fields))));
  const server = await startMilterServer({ listen: process.argv[2] ?? 'inet:9900@127.0.0.1', filter });
  console.log(`custom milter listening on ${JSON.stringify(server.address)}`);
  process.once('SIGTERM', () => void server.close());
}
