export { defang, type DefangOptions } from './engine.js';
export { DEFAULT_POLICY, resolvePolicy, type DefangPolicy, type PolicyInput, type PolicyOverride, type Envelope } from './policy.js';
export { DEFAULT_ACTIONS } from './default-actions.js';
export { DEFAULT_BANNED_EXTENSIONS, DEFAULT_BANNED_TYPES, BANNED_EXTENSION_SOURCES } from './banned-lists.js';
export { sanitizeHtml } from './html-sanitizer.js';
export { sniff, type SniffedType } from './sniff.js';
export type { Action, DefangReport, PartReport, Reason, ReasonCode, Verdict } from './types.js';
export { validatePolicy, readPolicyFile } from './policy-file.js';
