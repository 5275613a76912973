import { COMPRESSION_EXTENSIONS, DEFAULT_BANNED_EXTENSIONS, DEFAULT_BANNED_TYPES } from './banned-lists.js';
import { DEFAULT_ACTIONS } from './default-actions.js';
import type { Action, ArchiveLimits, ReasonCode } from './types.js';

/** Everything the engine decides by. A JSON file or a TS object; every field has a documented default. */
export interface DefangPolicy {
  /** Lower-case extensions without the dot. Default: the union of the vendor lists (banned-lists.ts). */
  bannedExtensions: readonly string[];
  /** Declared MIME types that are banned whatever the content. */
  bannedTypes: readonly string[];
  /** What to do for each finding. */
  actions: Readonly<Record<ReasonCode, Action>>;
  /** Looking inside zip, TNEF and compressed files. */
  archives: ArchiveLimits;
  /** Decoded bytes looked at per part (sniffing, archives); a larger part is a finding. Default 64 MiB. */
  maxDecodedBytes: number;
  /** Replacement text part for `replace`. */
  warning: {
    filename: string;
    /** Template with ${name}, ${reasons}, ${type}, ${sniffedType}, ${size}, ${sha256}, ${excerpt}: ASCII-escaped values. */
    text: string;
  };
  /** Report header added to the message when it was changed (false: none). */
  reportHeader: string | false;
  /** Overrides by envelope domain, applied in order over the rest of the policy. */
  overrides: readonly PolicyOverride[];
}

export interface PolicyOverride {
  /** Sender domains (a domain matches itself and its subdomains). */
  senderDomains?: readonly string[];
  /** Recipient domains: the override applies when any recipient matches. */
  recipientDomains?: readonly string[];
  policy: PolicyInput;
}

/** What a user writes: any subset, merged over the defaults. */
export type PolicyInput = Partial<Omit<DefangPolicy, 'actions' | 'archives' | 'warning' | 'overrides'>> & {
  actions?: Partial<Record<ReasonCode, Action>>;
  archives?: Partial<ArchiveLimits>;
  warning?: Partial<DefangPolicy['warning']>;
  overrides?: readonly PolicyOverride[];
};

const WARNING_TEXT = [
  'WARNING: a part of this message was removed by the mail filter because it could harm your computer.',
  '',
  'Original name:  ${name}',
  'Declared type:  ${type}',
  'Detected type:  ${sniffedType}',
  'Size:           ${size} bytes',
  'SHA-256:        ${sha256}',
  'Reasons:        ${reasons}',
  '${excerpt}',
  'If you expected this file, ask the sender to share it another way, or contact your mail administrator.',
  '',
].join('\n');

export const DEFAULT_POLICY: DefangPolicy = Object.freeze({
  bannedExtensions: DEFAULT_BANNED_EXTENSIONS,
  bannedTypes: DEFAULT_BANNED_TYPES,
  actions: DEFAULT_ACTIONS,
  // Gmail/M365 look 1-2 levels into archives; amavis uses 14 levels and 300 MiB. Bombs need the ratio cap.
  archives: Object.freeze({ maxDepth: 5, maxMembers: 1000, maxTotalBytes: 128 * 1024 * 1024, maxRatio: 200 }),
  maxDecodedBytes: 64 * 1024 * 1024,
  warning: Object.freeze({ filename: 'WARNING.txt', text: WARNING_TEXT }),
  reportHeader: 'X-Milterkit-Defang',
  overrides: [],
});

function merge(base: DefangPolicy, input: PolicyInput): DefangPolicy {
  return {
    ...base,
    ...input,
    actions: { ...base.actions, ...input.actions },
    archives: { ...base.archives, ...input.archives },
    warning: { ...base.warning, ...input.warning },
    overrides: input.overrides ?? base.overrides,
  };
}

function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).replace(/[>\s]+$/, '').toLowerCase();
}

function domainMatches(domain: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => {
    const pattern = p.toLowerCase().replace(/^\./, '');
    return domain === pattern || domain.endsWith(`.${pattern}`);
  });
}

/** The envelope of the message being defanged, for per-domain overrides. */
export interface Envelope {
  sender?: string;
  recipients?: readonly string[];
}

/** "Use the defaults", as one shared object so that its merge is cached too. */
export const NO_POLICY: PolicyInput = Object.freeze({});

// A milter passes the same policy object for every message: merge it over the defaults once.
const merged = new WeakMap<PolicyInput, DefangPolicy>();

/** The defaults, the user's policy over them, then each override whose domains match the envelope. */
export function resolvePolicy(input: PolicyInput = NO_POLICY, envelope: Envelope = {}): DefangPolicy {
  let policy = merged.get(input);
  if (!policy) {
    policy = merge(DEFAULT_POLICY, input);
    merged.set(input, policy);
  }
  const sender = envelope.sender ? domainOf(envelope.sender) : undefined;
  const recipients = (envelope.recipients ?? []).map(domainOf);
  for (const override of policy.overrides) {
    const senderHit = override.senderDomains !== undefined && sender !== undefined && domainMatches(sender, override.senderDomains);
    const recipientHit = override.recipientDomains !== undefined && recipients.some((d) => domainMatches(d, override.recipientDomains ?? []));
    if (senderHit || recipientHit) policy = merge(policy, override.policy);
  }
  return policy;
}

/** Lookup sets derived from a policy once per message. */
export interface PolicySets {
  bannedExtensions: ReadonlySet<string>;
  bannedTypes: ReadonlySet<string>;
  compression: ReadonlySet<string>;
}

// Keyed by the lists themselves: policies merged per message share them, so the sets are built once.
const extensionSets = new WeakMap<readonly string[], ReadonlySet<string>>();
const typeSets = new WeakMap<readonly string[], ReadonlySet<string>>();

function lowerSet(cache: WeakMap<readonly string[], ReadonlySet<string>>, list: readonly string[], normalize: (s: string) => string): ReadonlySet<string> {
  let set = cache.get(list);
  if (!set) {
    set = new Set(list.map(normalize));
    cache.set(list, set);
  }
  return set;
}

export function policySets(policy: DefangPolicy): PolicySets {
  return {
    bannedExtensions: lowerSet(extensionSets, policy.bannedExtensions, (e) => e.replace(/^\./, '').toLowerCase()),
    bannedTypes: lowerSet(typeSets, policy.bannedTypes, (t) => t.toLowerCase()),
    compression: COMPRESSION_EXTENSIONS,
  };
}
