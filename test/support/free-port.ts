import { once } from 'node:events';
import { createServer } from 'node:net';

/** A free port on 127.0.0.1, as the kernel hands one out (free until someone else binds it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP port from the kernel');
  return address.port;
}
