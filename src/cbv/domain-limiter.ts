/**
 * Etiquette towards each remote domain: at most `concurrency` sessions at once and `perMinute` new ones per
 * minute (a token bucket). Callers beyond that wait in line, within their own deadline.
 */
interface DomainState {
  active: number;
  tokens: number;
  refilled: number;
  queue: (() => void)[];
}

export class DomainLimiter {
  private readonly domains = new Map<string, DomainState>();
  private readonly concurrency: number;
  private readonly perMinute: number;

  constructor(concurrency: number, perMinute: number) {
    this.concurrency = concurrency;
    this.perMinute = perMinute;
  }

  private state(domain: string): DomainState {
    let state = this.domains.get(domain);
    if (!state) {
      state = { active: 0, tokens: this.perMinute, refilled: Date.now(), queue: [] };
      this.domains.set(domain, state);
    }
    return state;
  }

  private refill(state: DomainState): void {
    const now = Date.now();
    state.tokens = Math.min(this.perMinute, state.tokens + ((now - state.refilled) / 60_000) * this.perMinute);
    state.refilled = now;
  }

  /** Runs `work` when the domain allows it; rejects if that does not happen before `deadline`. */
  async run<T>(domain: string, deadline: number, work: () => Promise<T>): Promise<T> {
    const state = this.state(domain);
    for (;;) {
      this.refill(state);
      if (state.active < this.concurrency && state.tokens >= 1) break;
      const wait = state.tokens >= 1 ? undefined : ((1 - state.tokens) / this.perMinute) * 60_000;
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`rate limit for ${domain}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(remaining, wait ?? remaining));
        state.queue.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    state.active++;
    state.tokens -= 1;
    try {
      return await work();
    } finally {
      state.active--;
      state.queue.shift()?.();
      if (state.active === 0 && state.queue.length === 0 && state.tokens >= this.perMinute) this.domains.delete(domain);
    }
  }
}
