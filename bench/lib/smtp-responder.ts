// A minimal SMTP responder for the verifier benchmark, run as its own process so that it does not share
// the client's event loop: 220, 250 to everything, 221 to QUIT. Prints its port on stdout.
import { createServer } from 'node:net';

const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('error', () => {});
  socket.write('220 bench.test ESMTP\r\n');
  let buffer = '';
  socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    let out = '';
    for (let eol = buffer.indexOf('\r\n'); eol >= 0; eol = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, eol);
      buffer = buffer.slice(eol + 2);
      if (line.startsWith('EHLO')) out += '250-bench.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n';
      else if (line === 'QUIT') out += '221 bye\r\n';
      else out += '250 ok\r\n';
    }
    if (out) socket.write(out);
    if (out.endsWith('221 bye\r\n')) socket.end();
  });
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
});
