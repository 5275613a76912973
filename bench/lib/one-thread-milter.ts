// The daemon's work with its pipeline in the thread that speaks to the MTA, as it ran before pipeline
// threads: the same plugins (defang, then the bench's header plugin), the same adapter and the same log
// line per message. Beside `milterkit` in the milter bench it shows what handing each message to a
// pipeline thread costs.
//
//     node --import tsx bench/lib/one-thread-milter.ts unix:/path/to/socket
import { fileURLToPath } from 'node:url';
import { buildPipeline } from '../../src/daemon/config.js';
import { log } from '../../src/daemon/log.js';
import { pipeline } from '../../src/daemon/pipeline.js';
import { messageFilter } from '../../src/milter/message-adapter.js';
import { startMilterServer } from '../../src/milter/server.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const plugins = await buildPipeline([{ plugin: 'defang' }, { plugin: 'module', path: 'bench-header-plugin.mjs' }], here);
await startMilterServer({ listen: process.argv[2] ?? '', socketMode: '666', filter: messageFilter(pipeline(plugins, (fields) => log('message', fields))), log });
