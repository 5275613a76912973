/**
 * A file name from a message, made safe to create on a local disk: a file name chosen by a sender must
 * not escape the target folder, pose as another type, or trip over Windows reserved names.
 */
const RESERVED = /^(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\.|$)/i;
// Controls, path separators, characters Windows forbids, and bidi / zero-width format characters that
// make "exe.pdf" display as something else.
const UNSAFE = /[\u0000-\u001f\u007f/\\:*?"<>|\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;
const MAX_BYTES = 200;

export function toSafeFilename(name: string | undefined, fallback = 'attachment'): string {
  let safe = (name ?? '').normalize('NFC').replace(UNSAFE, '_');
  // Leading dots hide files (and "..") ; trailing dots and spaces are dropped by Windows.
  safe = safe.replace(/^[\s.]+/, '').replace(/[\s.]+$/, '');
  if (RESERVED.test(safe)) safe = `_${safe}`;
  if (safe === '') safe = fallback;
  if (Buffer.byteLength(safe) > MAX_BYTES) {
    const dot = safe.lastIndexOf('.');
    const ext = dot > 0 && safe.length - dot <= 16 ? safe.slice(dot) : '';
    let stem = safe.slice(0, safe.length - ext.length);
    while (Buffer.byteLength(stem + ext) > MAX_BYTES) stem = stem.slice(0, -1);
    safe = stem + ext;
  }
  return safe;
}
