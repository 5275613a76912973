import type { Action, ReasonCode } from './types.js';

/**
 * What the default policy does about each finding. Fail closed: anything that could carry or hide an
 * executable payload is replaced by a warning; what makes the whole message's structure uncertain is
 * quarantined; fragmented or external bodies (which no filter can see) are rejected.
 */
export const DEFAULT_ACTIONS: Readonly<Record<ReasonCode, Action>> = Object.freeze({
  'banned-extension': 'replace',
  'double-extension': 'replace',
  'clsid-extension': 'replace',
  'bidi-control-in-name': 'replace',
  'zero-width-in-name': 'replace',
  'control-character-in-name': 'replace',
  'conflicting-names': 'replace',
  'banned-type': 'replace',
  'executable-content': 'replace',
  'shortcut-content': 'replace',
  'script-content': 'replace',
  'macro-document': 'replace',
  'disk-image': 'replace',
  'html-attachment': 'replace',
  'eicar-test-file': 'replace',
  'dangerous-archive-member': 'replace',
  'encrypted-archive': 'replace',
  'unreadable-archive': 'replace',
  'ambiguous-archive': 'replace',
  // rar, 7z, cab, bzip2, xz: formats we cannot look into. Fail closed; a site may accept them.
  'unscannable-archive': 'replace',
  'archive-limit-exceeded': 'replace',
  'dangerous-tnef-attachment': 'replace',
  'unreadable-tnef': 'replace',
  // The block is cut out of the text; the rest of the message text stays.
  'inline-encoded-file': 'sanitize',
  'fragmented-message': 'reject',
  'external-body': 'reject',
  'html-active-content': 'sanitize',
  'ambiguous-mime': 'replace',
  'ambiguous-structure': 'quarantine',
  'undecodable-content': 'replace',
  'mime-limit-exceeded': 'quarantine',
});
