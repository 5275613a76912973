// Preloaded (--import) into the daemon by a test: an exception in its main thread a while after it
// starts, as a bug of the daemon's own would throw. Pipeline threads load this too, and ignore it.
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  setTimeout(() => {
    throw new Error('an error of the daemon itself (a test)');
  }, 3000).unref();
}
