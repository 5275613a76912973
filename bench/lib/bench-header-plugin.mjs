// The daemon benchmark's plugin after defang: a header on every message, as the pymilter baseline adds one.
export default () => ({
  name: 'bench',
  check(message) {
    message.headers.add('X-Bench', 'seen');
    return { action: 'accept', changed: true };
  },
});
