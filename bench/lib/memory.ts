/**
 * RSS with the inputs loaded and the garbage from loading them collected: the level that peaks are
 * measured from. The child runs with --expose-gc; without it the baseline is merely a little noisier.
 */
export function baselineRss(): number {
  globalThis.gc?.();
  return process.memoryUsage().rss;
}

/** Highest RSS this process has reached, in bytes (Node reports maxRSS in KiB). */
export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024;
}
