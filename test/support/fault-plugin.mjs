// A plugin module (plain JavaScript, as the daemon loads them) that misbehaves on demand, for the
// daemon's fault tests: the first word of the Subject says how, the second gives a number where one is
// needed; the sender and the recipients choose faults of `begin` and `recipient`.
import { EventEmitter } from 'node:events';
import { parentPort } from 'node:worker_threads';

const later = (ms, value) => new Promise((resolve) => setTimeout(() => resolve(value), ms));

/** Answers of the wrong shape, by name. */
const ANSWERS = {
  Reject: { action: 'Reject' },
  bare: 'reject',
  bogus: { action: 'bogus' },
  nothing: undefined,
  'wrong-class': { action: 'reject', reply: '450 4.7.1 a tempfail reply on a reject' },
  'not-a-reply': { action: 'tempfail', reply: 'try again later' },
  'changed-yes': { action: 'accept', changed: 'yes' },
  quarantine: { action: 'quarantine' },
};

export default function faultPlugin() {
  return {
    name: 'faults',
    begin(envelope) {
      if (envelope.sender.includes('begin-throws')) throw new Error('begin threw');
      if (envelope.sender.includes('begin-rejects')) return Promise.reject(new Error('begin rejected'));
      return undefined;
    },
    recipient(envelope, recipient) {
      if (recipient.includes('rcpt-throws')) throw new Error('the recipient check threw');
      if (recipient.includes('rcpt-bogus')) return { action: 'deny' };
      return undefined;
    },
    check(message) {
      const [kind = '', arg] = (message.headers.get('subject') ?? '').trim().split(/\s+/);
      switch (kind) {
        case 'throw':
          throw new Error('thrown by check');
        case 'rejected':
          return Promise.reject(new Error('a rejected promise from check'));
        case 'unawaited':
          // Nobody ever handles this one.
          Promise.reject(new Error('a rejection nobody awaits'));
          return later(300, { action: 'accept' });
        case 'timer-throw':
          setTimeout(() => {
            throw new Error('thrown in a timer');
          }, 10);
          return later(300, { action: 'accept' });
        case 'listener-throw': {
          const events = new EventEmitter();
          events.on('data', () => {
            throw new Error('thrown in an event listener');
          });
          setTimeout(() => events.emit('data'), 10);
          return later(300, { action: 'accept' });
        }
        case 'late-throw':
          // After the message is answered: nothing to fail any more, but it is logged and the daemon lives.
          setTimeout(() => {
            throw new Error('thrown long after the answer');
          }, 200);
          return { action: 'accept' };
        case 'answer':
          return ANSWERS[arg];
        case 'busy': {
          // CPU-bound and synchronous: it never yields for `arg` milliseconds.
          const until = Date.now() + Number(arg);
          while (Date.now() < until);
          return { action: 'accept', log: { busy: Number(arg) } };
        }
        case 'loop':
          for (;;);
        case 'hang':
          return new Promise(() => {});
        case 'exit':
          process.exit(3);
        case 'flip': {
          // A reject while it is looked at, an accept if it is looked at again.
          let reads = 0;
          return { get action() { return ++reads <= Number(arg ?? 1) ? 'reject' : 'accept'; } };
        }
        case 'mutate': {
          // A plain reject that turns into an accept a moment after it was returned.
          const answer = { action: 'reject' };
          queueMicrotask(() => queueMicrotask(() => (answer.action = 'accept')));
          return answer;
        }
        case 'port': {
          // Writes to its thread's parentPort as if it were the daemon's: nothing there is an answer.
          parentPort?.postMessage(null);
          for (let call = 0; call < 200; call++) parentPort?.postMessage({ type: 'result', call, ok: true, value: { verdict: 'accept', edits: [] }, records: [] });
          return { action: 'reject', reply: '550 5.7.1 refused by the plugin' };
        }
        case 'unprintable':
          setTimeout(() => {
            throw { toString() { throw null; } };
          }, 10);
          return later(300, { action: 'accept' });
        case 'kill-daemon':
          process.kill(process.pid, 'SIGTERM');
          return { action: 'accept' };
        case 'spew':
          // Megabytes on stdout with no newline: a line of the log, cut short.
          process.stdout.write('z'.repeat(Number(arg) * 1024 * 1024));
          process.stdout.write('\n');
          return { action: 'accept' };
        default:
          return { action: 'accept' };
      }
    },
  };
}
