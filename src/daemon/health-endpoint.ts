import { createServer, type Server } from 'node:http';
import type { StatsSnapshot } from './stats.js';

/**
 * A small HTTP endpoint for monitoring: GET /health answers 200 with the stats as JSON while the daemon
 * can filter mail, and 503 (status "no pipeline threads") while none of its pipeline threads is ready:
 * mail then waits, and gets the fallback at its time limit. Loopback by default in examples: it says how
 * much mail flows, nothing more.
 */
export async function startHealthEndpoint(hostPort: string, stats: () => Promise<StatsSnapshot>): Promise<Server> {
  const at = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(hostPort.slice(at + 1));
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url !== '/health') {
      response.writeHead(404).end();
      return;
    }
    stats().then(
      (snapshot) => {
        const ok = snapshot.pipelineThreads > 0;
        response.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'no pipeline threads', ...snapshot }));
      },
      () => response.writeHead(503).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return server;
}
