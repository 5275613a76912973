import { decodeCharset } from './charset.js';
import { decodeEncodedWords, type EncodedWordIssues } from './encoded-words.js';

/**
 * Structured header values: `value; name=param; ...` (RFC 2045 5.1) with RFC 2231 extensions.
 *
 * Written here rather than taken from libmime.parseHeaderValue because that keeps one value per
 * parameter name: `filename="a.txt"; filename="b.exe"` silently becomes one name, and a filter must see
 * every name a client might use. Duplicates are kept in order; continuations are joined as bytes before
 * their charset is applied (so a UTF-8 character split across segments survives), then encoded-words
 * inside the result are decoded (Outlook writes `name="=?utf-8?B?...?="`).
 */
export interface RawParameter {
  /** Lower-case name without the RFC 2231 `*N` / `*` suffix. */
  name: string;
  section: number | undefined;
  /** Written with a trailing `*`: charset'language'percent-encoded. */
  extended: boolean;
  value: string;
}

export interface StructuredValue {
  /** The part before the first `;`, trimmed, comments removed (as written: callers lower-case it). */
  value: string;
  params: RawParameter[];
}

export interface Parameter {
  name: string;
  value: string;
  /** Came from an RFC 2231 form (`name*=` or `name*0=` ...). */
  rfc2231: boolean;
}

function skipComment(s: string, i: number): number {
  // i is at "(": comments nest and may contain quoted pairs (RFC 5322 3.2.2).
  let depth = 0;
  for (; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  return s.length;
}

/** Index of the next ";" outside comments, or the end. */
function nextSemicolon(s: string, i: number): number {
  for (; i < s.length; i++) {
    if (s[i] === ';') return i;
    if (s[i] === '(') i = skipComment(s, i) - 1;
  }
  return s.length;
}

function stripComments(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; ) {
    if (s[i] === '(') i = skipComment(s, i);
    else out += s[i++];
  }
  return out;
}

function readQuoted(s: string, i: number): { text: string; next: number } {
  // i is at the opening quote; an unterminated string runs to the end.
  let text = '';
  for (i++; i < s.length; i++) {
    const c = s[i] as string;
    if (c === '\\' && i + 1 < s.length) text += s[++i];
    else if (c === '"') return { text, next: i + 1 };
    else text += c;
  }
  return { text, next: i };
}

function splitName(raw: string): Pick<RawParameter, 'name' | 'section' | 'extended'> {
  const m = /^([^*]+)(?:\*(\d+))?(\*)?$/.exec(raw);
  if (!m) return { name: raw, section: undefined, extended: false };
  return { name: m[1] as string, section: m[2] === undefined ? undefined : Number(m[2]), extended: m[3] === '*' };
}

export function parseStructuredValue(input: string): StructuredValue {
  let i = 0;
  let value = '';
  while (i < input.length && input[i] !== ';') {
    const c = input[i] as string;
    if (c === '(') i = skipComment(input, i);
    else if (c === '"') {
      const q = readQuoted(input, i);
      value += q.text;
      i = q.next;
    } else {
      const start = i;
      while (i < input.length && input[i] !== ';' && input[i] !== '(' && input[i] !== '"') i++;
      value += input.slice(start, i);
    }
  }
  const params: RawParameter[] = [];
  while (i < input.length) {
    i++; // the ";"
    let name = '';
    while (i < input.length && input[i] !== '=' && input[i] !== ';') {
      if (input[i] === '(') i = skipComment(input, i);
      else {
        const start = i;
        while (i < input.length && input[i] !== '=' && input[i] !== ';' && input[i] !== '(') i++;
        name += input.slice(start, i);
      }
    }
    if (input[i] !== '=') continue; // "; junk;" has no value: not a parameter
    i++;
    while (input[i] === ' ' || input[i] === '\t') i++;
    let text = '';
    if (input[i] === '"') {
      const q = readQuoted(input, i);
      text = q.text;
      i = q.next;
      while (i < input.length && input[i] !== ';') i++; // junk after the closing quote
    } else {
      // Lenient: unquoted values with spaces (`filename=my file.exe`) are taken whole, as clients do.
      const end = nextSemicolon(input, i);
      const raw = input.slice(i, end);
      text = (raw.includes('(') ? stripComments(raw) : raw).trim();
      i = end;
    }
    const key = name.trim().toLowerCase();
    if (key !== '') params.push({ ...splitName(key), value: text });
  }
  return { value: value.trim(), params };
}

function percentDecode(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x25 && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) bytes.push(c);
    else for (const b of Buffer.from(text[i] as string, 'utf8')) bytes.push(b);
  }
  return Buffer.from(bytes);
}

/** `charset'language'data` of an extended value; a value without the two quotes is all data. */
function splitExtended(text: string): { charset: string | undefined; data: string } {
  const m = /^([^']*)'[^']*'(.*)$/s.exec(text);
  return m ? { charset: m[1] || undefined, data: m[2] as string } : { charset: undefined, data: text };
}

/** Joins RFC 2231 continuations and decodes every parameter; duplicates are kept in order. */
export function resolveParameters(params: readonly RawParameter[], fallbackCharset: string, issues: EncodedWordIssues): Parameter[] {
  const decodeBytes = (bytes: Buffer, charset: string | undefined): string => {
    const decoded = decodeCharset(bytes, charset ?? 'utf-8', fallbackCharset);
    if (decoded.unknownCharset !== undefined) issues.unknownCharsets.push(decoded.unknownCharset);
    return decoded.text;
  };
  const words = (text: string): string => decodeEncodedWords(text, fallbackCharset, issues);
  const out: Parameter[] = [];
  const groups = new Map<string, RawParameter[]>();
  const groupSlots = new Map<string, number>();
  for (const p of params) {
    if (p.section === undefined) {
      if (!p.extended) out.push({ name: p.name, value: words(p.value), rfc2231: false });
      else {
        const { charset, data } = splitExtended(p.value);
        out.push({ name: p.name, value: words(decodeBytes(percentDecode(data), charset)), rfc2231: true });
      }
      continue;
    }
    const group = groups.get(p.name);
    if (group) group.push(p);
    else {
      groups.set(p.name, [p]);
      groupSlots.set(p.name, out.length);
      out.push({ name: p.name, value: '', rfc2231: true });
    }
  }
  const simple = new Set<string>();
  for (const p of params) {
    if (p.section !== undefined) continue;
    if (simple.has(p.name)) issues.ambiguousParameters?.push(`${p.name} given twice`);
    simple.add(p.name);
  }
  for (const [name, group] of groups) {
    const ordered = [...group].sort((a, b) => (a.section as number) - (b.section as number));
    if (ordered.some((seg, i) => seg.section !== i)) issues.ambiguousParameters?.push(`${name}: continuation sections missing or repeated`);
    else if (group.some((seg, i) => seg.section !== i)) issues.ambiguousParameters?.push(`${name}: continuation sections out of order`);
    if (simple.has(name)) issues.ambiguousParameters?.push(`${name} given both whole and continued`);
    let charset: string | undefined;
    const bytes: Buffer[] = [];
    let lastSection = -1;
    for (const seg of ordered) {
      if (seg.section === lastSection) continue; // a repeated section: the first one wins
      lastSection = seg.section as number;
      if (!seg.extended) bytes.push(Buffer.from(seg.value, 'utf8'));
      else if (seg.section === 0) {
        const split = splitExtended(seg.value);
        charset = split.charset;
        bytes.push(percentDecode(split.data));
      } else bytes.push(percentDecode(seg.value));
    }
    (out[groupSlots.get(name) as number] as Parameter).value = words(decodeBytes(Buffer.concat(bytes), charset));
  }
  return out;
}
