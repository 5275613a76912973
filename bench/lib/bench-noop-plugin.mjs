// The benchmark's empty pipeline: a plugin that looks at nothing, to measure what the daemon costs before any work.
export default () => ({ name: 'noop', check: () => ({ action: 'accept' }) });
