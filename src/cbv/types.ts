import type { MxResolver } from '../smtp/mx-route.js';

/**
 * - valid: the server accepted the address (250/251), and it is not a catch-all domain;
 * - invalid: the server rejected the mailbox (5.1.x, bare 550/551/553), or DNS says the domain takes no mail;
 * - tempfail: try later (greylisting, 4xx, timeouts, no reachable MX, DNS trouble);
 * - unverifiable: the answer says nothing about the mailbox: policy rejects (5.7.x), a domain that refuses the
 *   null sender, a catch-all domain, a UTF-8 local part without SMTPUTF8.
 */
export type VerificationResult = 'valid' | 'invalid' | 'tempfail' | 'unverifiable';

export interface Verification {
  address: string;
  result: VerificationResult;
  /** SMTP reply code of the deciding reply, when there was one. */
  code: number | undefined;
  enhancedStatus: string | undefined;
  /** The deciding reply (multi-line replies joined), or what went wrong. */
  message: string;
  /** A finer reason for unverifiable/tempfail results (e.g. 'null-sender-refused', 'catch-all', 'policy'). */
  detail?: string;
  /** The MX host that answered (or was tried last). */
  mx: string | undefined;
  /** Every command sent and reply received, "C: ..." / "S: ..." lines. */
  transcript: string[];
  durationMs: number;
  fromCache: boolean;
}

/** Where results are kept between verifications; an in-memory one by default, Redis for a fleet. */
export interface VerificationCache {
  get(key: string): Promise<Verification | undefined>;
  set(key: string, value: Verification, ttlMs: number): Promise<void>;
  close?(): Promise<void>;
}

export interface CacheTtls {
  /** Valid results. Default 7 days (Postfix refreshes positives weekly; pymilter keeps 7 days). */
  positiveMs: number;
  /** Invalid and unverifiable results. Default 3 hours (Postfix's negative refresh). */
  negativeMs: number;
  /** Tempfail results: short, so a greylisting site is retried soon. Default 5 minutes. */
  tempfailMs: number;
}

export interface VerifyOptions {
  resolver?: MxResolver;
  /** SMTP port of the MX hosts. Default 25. */
  port?: number;
  /** Budget for one verification, all MX hosts together. Default 30 s. */
  timeoutMs?: number;
  /** Per-stage limits inside the budget: connect 10 s, greeting 30 s, each command 30 s by default. */
  connectTimeoutMs?: number;
  greetingTimeoutMs?: number;
  commandTimeoutMs?: number;
  /** Our HELO/EHLO name. Default os.hostname(). */
  heloName?: string;
  /** MAIL FROM of the probe. Default '' (the null sender). */
  probeSender?: string;
  /** Probe a random local part too: if it is accepted, the domain is catch-all and the result is unverifiable. */
  detectCatchAll?: boolean;
  /** MX hosts that resolve to loopback (and private) addresses are refused unless allowed. */
  allowLoopback?: boolean;
  allowPrivate?: boolean;
  /** STARTTLS when offered (default true). */
  opportunisticTls?: boolean;
  /**
   * Result cache: default a process-wide in-memory cache; a `redis://` / `rediss://` URL shares results
   * between the processes and hosts of a fleet (one client per URL and process); `false` disables caching.
   */
  cache?: VerificationCache | string | false;
  ttls?: Partial<CacheTtls>;
  /** At most this many SMTP sessions to one domain at once (default 2, as Postfix's smtp_mx_session_limit). */
  maxConcurrentPerDomain?: number;
  /** At most this many new sessions per domain per minute (default 30). */
  maxSessionsPerMinutePerDomain?: number;
}
