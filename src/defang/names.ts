import type { Reason } from './types.js';

/**
 * File-name checks. A name is attacker-chosen text that different programs read differently: Windows
 * drops trailing dots and spaces, C APIs stop at NUL, bidi controls reorder what a person sees. So each
 * name is turned into every form some program could act on, and every form is checked.
 */
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/u;
const ZERO_WIDTH = /[\u200b-\u200d\u2060\ufeff\u180e]/u;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/gu;
const INVISIBLE = /[\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff\u180e]/gu;
// `name.{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}`: Windows opens it with the handler of that class id.
const CLSID = /\.\{[^}]*\}$/;
// A short, non-numeric extension in front of the last one: `invoice.pdf.exe` (rspamd, amavis).
const DOUBLE_EXTENSION = /\.([a-z][a-z0-9]{0,3})\s*\.[a-z0-9_-]+$/;

/** The forms of a name that some program could act on, lower-case. */
export function nameVariants(name: string): string[] {
  const nfc = name.normalize('NFC');
  const forms = new Set<string>();
  const add = (form: string): void => {
    // Windows ignores trailing dots and spaces; matching is case-insensitive.
    const trimmed = form.replace(/[.\s]+$/u, '').toLowerCase();
    if (trimmed !== '') forms.add(trimmed);
  };
  const visible = nfc.replace(INVISIBLE, '');
  add(visible);
  // C strings end at NUL: `evil.exe\0.txt` is evil.exe to them.
  const nul = visible.indexOf('\u0000');
  if (nul >= 0) add(visible.slice(0, nul));
  add(visible.replace(CONTROLS, ''));
  // Folded or padded names (`evil.e xe`) as a program that drops whitespace reads them.
  add(visible.replace(/\s+/gu, ''));
  // Percent-encoded names (`evil%2Eexe`), as some clients decode them.
  if (/%[0-9a-f]{2}/i.test(visible)) {
    try {
      add(decodeURIComponent(visible));
    } catch {
      add(visible.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))));
    }
  }
  return [...forms];
}

export function extensionOf(form: string): string | undefined {
  const dot = form.lastIndexOf('.');
  return dot >= 0 && dot < form.length - 1 ? form.slice(dot + 1).trim() : undefined;
}

/** Characters in a name that hide what it is. */
export function hiddenCharacterReasons(name: string): Reason[] {
  const reasons: Reason[] = [];
  const shown = escapeName(name);
  if (BIDI.test(name)) reasons.push({ code: 'bidi-control-in-name', detail: shown });
  if (ZERO_WIDTH.test(name)) reasons.push({ code: 'zero-width-in-name', detail: shown });
  if (CONTROL.test(name)) reasons.push({ code: 'control-character-in-name', detail: shown });
  return reasons;
}

/**
 * Reasons a name is dangerous. `banned` holds lower-case extensions; an extension under a compression
 * suffix (`evil.exe.gz`) counts too.
 */
export function nameReasons(name: string, banned: ReadonlySet<string>, compression: ReadonlySet<string>): Reason[] {
  const reasons: Reason[] = [...hiddenCharacterReasons(name)];
  const shown = escapeName(name);
  const seen = new Set<string>();
  const push = (reason: Reason): void => {
    const key = `${reason.code}:${reason.detail ?? ''}`;
    if (!seen.has(key)) {
      seen.add(key);
      reasons.push(reason);
    }
  };
  for (const form of nameVariants(name)) {
    if (CLSID.test(form)) push({ code: 'clsid-extension', detail: shown });
    let ext = extensionOf(form);
    let stem = form;
    if (ext !== undefined && compression.has(ext)) {
      stem = form.slice(0, form.length - ext.length - 1);
      ext = extensionOf(stem) ?? ext;
    }
    if (ext === undefined || !banned.has(ext)) continue;
    push({ code: 'banned-extension', detail: `${ext}: ${shown}` });
    if (DOUBLE_EXTENSION.test(stem)) push({ code: 'double-extension', detail: shown });
  }
  return reasons;
}

/**
 * A name made safe to show in a report, a header or a warning: printable ASCII only, everything else
 * as \u escapes, so that no attacker byte (bidi override, control, line break) reaches a reader.
 */
export function escapeName(name: string, maxLength = 200): string {
  let out = '';
  for (const ch of name) {
    const code = ch.codePointAt(0) as number;
    if (code >= 0x20 && code < 0x7f && ch !== '\\' && ch !== '"') out += ch;
    else if (code <= 0xffff) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += `\\u{${code.toString(16)}}`;
    if (out.length > maxLength) return `${out.slice(0, maxLength)}...`;
  }
  return out;
}

/** Distinct names once normalised: more than one means clients may save the part under different names. */
export function distinctNames(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => n.normalize('NFC').replace(INVISIBLE, '').replace(/[.\s]+$/u, '').toLowerCase()))];
}
