import { readFile } from 'node:fs/promises';
import { DEFAULT_ACTIONS } from './default-actions.js';
import type { PolicyInput } from './policy.js';
import type { Action } from './types.js';

const ACTIONS: ReadonlySet<string> = new Set<Action>(['accept', 'sanitize', 'replace', 'drop', 'quarantine', 'reject']);
const TOP_LEVEL = new Set(['bannedExtensions', 'bannedTypes', 'actions', 'archives', 'maxDecodedBytes', 'warning', 'reportHeader', 'overrides']);
const ARCHIVE_KEYS = new Set(['maxDepth', 'maxMembers', 'maxTotalBytes', 'maxRatio']);

/**
 * Checks a policy read from JSON. A typo in a policy must not silently fall back to a default, so unknown
 * keys, reason codes and actions are errors, reported with their place in the file.
 */
export function validatePolicy(value: unknown, where = 'policy'): PolicyInput {
  const fail = (message: string): never => {
    throw new Error(`${where}: ${message}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('must be an object');
  const input = value as Record<string, unknown>;
  for (const key of Object.keys(input)) if (!TOP_LEVEL.has(key)) fail(`unknown key "${key}"`);
  for (const key of ['bannedExtensions', 'bannedTypes'] as const) {
    const list = input[key];
    if (list !== undefined && (!Array.isArray(list) || list.some((x) => typeof x !== 'string'))) fail(`${key} must be a list of strings`);
  }
  if (input.actions !== undefined) {
    if (typeof input.actions !== 'object' || input.actions === null) fail('actions must be an object');
    for (const [code, action] of Object.entries(input.actions as object)) {
      if (!(code in DEFAULT_ACTIONS)) fail(`actions: unknown reason "${code}"`);
      if (typeof action !== 'string' || !ACTIONS.has(action)) fail(`actions.${code}: unknown action "${String(action)}"`);
    }
  }
  if (input.archives !== undefined) {
    for (const [key, limit] of Object.entries(input.archives as object)) {
      if (!ARCHIVE_KEYS.has(key)) fail(`archives: unknown limit "${key}"`);
      if (!Number.isInteger(limit) || (limit as number) < 1) fail(`archives.${key} must be a positive integer`);
    }
  }
  if (input.maxDecodedBytes !== undefined && (!Number.isInteger(input.maxDecodedBytes) || (input.maxDecodedBytes as number) < 1)) {
    fail('maxDecodedBytes must be a positive integer');
  }
  if (input.reportHeader !== undefined && input.reportHeader !== false && (typeof input.reportHeader !== 'string' || !/^[\x21-\x39\x3b-\x7e]+$/.test(input.reportHeader))) {
    fail('reportHeader must be a header name or false');
  }
  if (input.overrides !== undefined) {
    if (!Array.isArray(input.overrides)) fail('overrides must be a list');
    (input.overrides as unknown[]).forEach((o, i) => {
      const override = o as Record<string, unknown>;
      if (typeof o !== 'object' || o === null) fail(`overrides[${i}] must be an object`);
      if (override.senderDomains === undefined && override.recipientDomains === undefined) fail(`overrides[${i}] needs senderDomains or recipientDomains`);
      validatePolicy(override.policy, `${where}: overrides[${i}].policy`);
    });
  }
  return input as PolicyInput;
}

export async function readPolicyFile(path: string): Promise<PolicyInput> {
  return validatePolicy(JSON.parse(await readFile(path, 'utf8')), path);
}
