export interface BenchOptions {
  /** One repetition and a smaller sample: a smoke run, not figures to quote. */
  quick: boolean;
}

/** One part of the toolkit being benchmarked (today only `mime`). */
export interface Area {
  name: string;
  /** Parent side: measures every case in child processes and prints the tables. */
  run(options: BenchOptions): Promise<void>;
  /** Child side: performs the one measurement `spec` describes and returns its result to the parent. */
  measure(spec: unknown): Promise<unknown>;
}
