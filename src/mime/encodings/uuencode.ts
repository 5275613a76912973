import type { Decoded } from './base64.js';

/**
 * x-uuencode bodies: `begin MODE NAME`, lines whose first character gives their byte count, then `end`.
 * Decoded leniently (a missing `end` still yields the data) and reported when the frame is broken.
 */
export function decodeUuencode(encoded: Buffer): Decoded & { filename?: string } {
  const lines = encoded.toString('latin1').split(/\r\n|\n|\r/);
  const beginAt = lines.findIndex((l) => /^begin(?:-base64)? [0-7]{3,4} /.test(l));
  if (beginAt < 0) return { data: Buffer.alloc(0), invalid: true };
  const filename = (lines[beginAt] as string).replace(/^begin\S* \S+ /, '');
  const chunks: Buffer[] = [];
  let ended = false;
  let invalid = false;
  for (let i = beginAt + 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === 'end') {
      ended = true;
      break;
    }
    if (line.length === 0) continue;
    const count = (line.charCodeAt(0) - 32) & 63;
    if (count === 0) continue;
    const out = Buffer.alloc(count);
    let n = 0;
    for (let p = 1; n < count; p += 4) {
      const v = (k: number): number => (line.charCodeAt(p + k) - 32) & 63;
      if (p + 1 >= line.length) {
        invalid = true;
        break;
      }
      const b0 = (v(0) << 2) | (v(1) >> 4);
      const b1 = ((v(1) & 15) << 4) | (v(2) >> 2);
      const b2 = ((v(2) & 3) << 6) | v(3);
      for (const b of [b0, b1, b2]) if (n < count) out[n++] = b & 0xff;
    }
    chunks.push(out.subarray(0, n));
  }
  return { data: Buffer.concat(chunks), invalid: invalid || !ended, filename };
}
