import type { RemovedItem } from './html-sanitizer.js';

/**
 * CSS in mail HTML (style attributes and <style> elements), filtered for the HTML sanitizer: no
 * expression(), script URLs, @import, behaviors or bindings, and url() only to http(s) or cid: parts.
 * Checks run on the CSS with escapes decoded, comments and whitespace removed, in lower case.
 */
export type CssReport = (kind: RemovedItem['kind'], name: string) => void;

/** Characters a browser ignores in a URL or CSS, which may hide a scheme or keyword from a simple check. */
export const INVISIBLE = /[\0-\x20\x7f-\xa0\xad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]+/g;

/** Never kept. Reported through CSS_DENIED_TOKENS, except for the inert form below. */
const CSS_DROPPED_PROPERTIES = new Set(['behavior', '-ms-behavior', '-moz-binding']);
/**
 * IE's built-in VML renderer, which nearly every Word/Outlook message binds inside a conditional comment: it runs no
 * code, so it is dropped without a report (reporting it would flag all Outlook mail as active).
 */
const CSS_INERT_BEHAVIOR = /behavior\s*:\s*url\(\s*["']?#default#vml["']?\s*\)/g;
/** Tokens looked for with escapes decoded, comments and whitespace removed, in lower case. */
const CSS_DENIED_TOKENS: ReadonlyArray<[string, string]> = [
  ['expression(', 'expression'],
  ['javascript:', 'javascript'],
  ['vbscript:', 'vbscript'],
  ['@import', '@import'],
  ['behavior:', 'behavior'],
  ['-moz-binding', '-moz-binding'],
];
/** Functions whose argument is a URL: allowed only for these schemes (remote images, as `img src` allows, and inline cid: parts). */
const CSS_URL_FUNCTIONS = new Set(['url', 'src']);
const CSS_URL_PREFIXES = ['https:', 'http:', 'cid:'];
/** Enough of a url() argument to read its scheme; a longer run of padding fails the check, which is safe. */
const CSS_URL_PREFIX_WINDOW = 256;
/** image()/image-set() take bare strings as URLs, which would get round the url() check. */
const CSS_STRING_URL_FUNCTION = /(?:^|-)image(?:-set)?$/;
/** At-rules holding rules, holding declarations; everything else (@import, @charset, @namespace ...) is dropped. */
const CSS_RULE_LIST_AT_RULES = new Set(['media', 'supports', 'keyframes', '-webkit-keyframes', '-moz-keyframes']);
const CSS_DECLARATION_AT_RULES = new Set(['font-face', 'page']);
/** Rule lists nested deeper than this are dropped (bounds the recursion). */
const CSS_MAX_NESTING = 3;
const CSS_PROPERTY = /^(?:--|-?[a-z_])[a-z0-9_-]*$/;


/**
 * A stylesheet keeping style rules, @media/@supports/@keyframes and @font-face/@page, with each declaration
 * filtered. The result holds no `<`, so it cannot end the style element.
 */
export function filterStylesheet(css: string, report: CssReport): string {
  return filterRuleList(stripCssComments(css), report, 0).join('\n');
}

function filterRuleList(css: string, report: CssReport, depth: number): string[] {
  const rules: string[] = [];
  let i = skipRuleSeparators(css, 0);
  while (i < css.length) {
    const start = i;
    const atRule = css[i] === '@' ? (/^@([a-z0-9_-]*)/i.exec(css.slice(i, i + 64))?.[1] ?? '').toLowerCase() : undefined;
    const open = findTopLevel(css, i, atRule === undefined ? '{' : '{;');
    if (open >= 0 && css[open] === '{') {
      const close = matchingBrace(css, open);
      i = close + 1;
      const prelude = cssTrim(css.slice(atRule === undefined ? start : start + 1 + atRule.length, open));
      const rule = filterRule(atRule, prelude, css.slice(open + 1, close), report, depth);
      if (rule !== undefined) rules.push(rule);
      // A dropped rule is still looked at, so nothing dangerous goes unreported because it was also malformed.
      else cssFinding(css.slice(start, i), report);
    } else {
      // A statement at-rule (@import, @charset, @namespace) or trailing junk: dropped.
      i = open < 0 ? css.length : open + 1;
      cssFinding(css.slice(start, i), report);
    }
    i = skipRuleSeparators(css, i);
  }
  return rules;
}

function filterRule(atRule: string | undefined, prelude: string, block: string, report: CssReport, depth: number): string | undefined {
  if (!isSafePrelude(prelude, atRule === undefined)) return undefined;
  let body: string[];
  if (atRule === undefined || CSS_DECLARATION_AT_RULES.has(atRule)) body = filterDeclarations(block, report);
  else if (CSS_RULE_LIST_AT_RULES.has(atRule) && depth < CSS_MAX_NESTING) body = filterRuleList(block, report, depth + 1);
  else return undefined;
  if (body.length === 0) return undefined;
  const head = atRule === undefined ? prelude : `@${atRule}${prelude === '' ? '' : ` ${prelude}`}`;
  return `${head}{${body.join(atRule === undefined || CSS_DECLARATION_AT_RULES.has(atRule) ? ';' : '\n')}}`;
}

/** A selector or at-rule prelude that can be written back as it is. */
function isSafePrelude(prelude: string, isSelector: boolean): boolean {
  if (isSelector && prelude === '') return false;
  if (/[<{};]/.test(prelude) || !isWellFormed(prelude)) return false;
  return cssFinding(prelude, () => undefined) === undefined;
}

/** Declarations as written (comments already removed), without the ones that are dangerous or malformed. */
export function filterDeclarations(css: string, report: CssReport): string[] {
  const kept: string[] = [];
  for (const piece of splitTopLevel(css, ';')) {
    const declaration = cssTrim(piece);
    if (declaration === '') continue;
    const colon = declaration.indexOf(':');
    const property = colon < 0 ? '' : cssTrim(decodeCssEscapes(declaration.slice(0, colon))).toLowerCase();
    if (cssFinding(declaration, report) !== undefined || CSS_DROPPED_PROPERTIES.has(property)) continue;
    // Malformed text is dropped: an open string, bracket or trailing backslash would swallow what we write next.
    if (!CSS_PROPERTY.test(property) || /[<{}]/.test(declaration) || !isWellFormed(declaration)) continue;
    kept.push(declaration);
  }
  return kept;
}

/** Reports and returns the first dangerous construct in `css`, looked for with escapes decoded. */
function cssFinding(css: string, report: CssReport): string | undefined {
  const decoded = decodeCssEscapes(css).normalize('NFKC').toLowerCase().replace(CSS_INERT_BEHAVIOR, '');
  // The most lenient reading: comment-like text removed even inside strings, then all whitespace.
  const compact = withoutAnyComments(decoded).replace(INVISIBLE, '');
  for (const [token, name] of CSS_DENIED_TOKENS) {
    if (compact.includes(token)) {
      report('css', name);
      return name;
    }
  }
  // Each "(" with the name before it, found by walking back: a regex for `name\s*\(` would backtrack quadratically.
  // `close` is the first ")" after the current "(": it only moves forward, and once none is left none comes later.
  let close = decoded.indexOf(')');
  for (let open = decoded.indexOf('('); open >= 0; open = decoded.indexOf('(', open + 1)) {
    let nameEnd = open;
    while (nameEnd > 0 && /\s/.test(decoded[nameEnd - 1] as string)) nameEnd--;
    let nameStart = nameEnd;
    while (nameStart > 0 && /[a-z0-9_-]/.test(decoded[nameStart - 1] as string)) nameStart--;
    const name = decoded.slice(nameStart, nameEnd);
    if (CSS_URL_FUNCTIONS.has(name)) {
      if (close !== -1 && close < open) close = decoded.indexOf(')', open);
      const end = Math.min(close < 0 ? decoded.length : close, open + 1 + CSS_URL_PREFIX_WINDOW);
      const target = decoded.slice(open + 1, end).replace(INVISIBLE, '').replace(/^["']/, '');
      if (!CSS_URL_PREFIXES.some((prefix) => target.startsWith(prefix))) {
        report('css', name);
        return name;
      }
    } else if (CSS_STRING_URL_FUNCTION.test(name)) {
      report('css', name);
      return name;
    }
  }
  return undefined;
}

/** CSS escapes (`\65`, `\e `, `\:`) resolved, so `\65 xpression(` is seen as `expression(`. */
function decodeCssEscapes(css: string): string {
  return css.replace(/\\(?:([0-9a-f]{1,6})(?:\r\n|[ \t\n\r\f])?|([\s\S])|$)/gi, (_, hex: string | undefined, char: string | undefined) => {
    if (hex !== undefined) {
      const cp = parseInt(hex, 16);
      return cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? '\ufffd' : String.fromCodePoint(cp);
    }
    return char === undefined || /[\n\r\f]/.test(char) ? '' : char;
  });
}

/**
 * Comments outside strings replaced by a space. A space, not nothing: joining the two sides could make a new
 * comment opener (`/` + `*`); old IE read `exp/**\/ression` as one word, which the checks still see because they
 * ignore whitespace.
 */
export function stripCssComments(css: string): string {
  let out = '';
  let from = 0;
  let i = 0;
  while (i < css.length) {
    const c = css[i];
    if (c === '\\') i += 2;
    else if (c === '"' || c === "'") i = stringEnd(css, i).end;
    else if (c === '/' && css[i + 1] === '*') {
      const close = css.indexOf('*/', i + 2);
      out += `${css.slice(from, i)} `;
      i = close < 0 ? css.length : close + 2;
      from = i;
    } else i++;
  }
  return out + css.slice(from);
}

/** Every `/*...*\/`, strings or not, removed (an unclosed one to the end). */
function withoutAnyComments(css: string): string {
  let out = '';
  let from = 0;
  for (let open = css.indexOf('/*'); open >= 0; open = css.indexOf('/*', from)) {
    const close = css.indexOf('*/', open + 2);
    out += css.slice(from, open);
    from = close < 0 ? css.length : close + 2;
  }
  return out + css.slice(from);
}

/** Where the string starting at `start` ends; a CSS string also ends, unclosed, at a newline. */
function stringEnd(css: string, start: number): { end: number; closed: boolean } {
  const quote = css[start];
  for (let i = start + 1; i < css.length; i++) {
    const c = css[i];
    if (c === '\\') i++;
    else if (c === quote) return { end: i + 1, closed: true };
    else if (c === '\n' || c === '\r' || c === '\f') return { end: i, closed: false };
  }
  return { end: css.length, closed: false };
}

/** Index of the first of `stops` outside strings and brackets, or -1. */
function findTopLevel(css: string, from: number, stops: string): number {
  let depth = 0;
  for (let i = from; i < css.length; i++) {
    const c = css[i] as string;
    if (c === '\\') i++;
    else if (c === '"' || c === "'") i = stringEnd(css, i).end - 1;
    else if (depth === 0 && stops.includes(c)) return i;
    else if (c === '(' || c === '[') depth++;
    else if ((c === ')' || c === ']') && depth > 0) depth--;
  }
  return -1;
}

/** Index of the `}` closing the block opened at `open`, or the end of the text (CSS closes open blocks there). */
function matchingBrace(css: string, open: number): number {
  let depth = 0;
  for (let i = open; i < css.length; i++) {
    const c = css[i];
    if (c === '\\') i++;
    else if (c === '"' || c === "'") i = stringEnd(css, i).end - 1;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i;
  }
  return css.length;
}

function splitTopLevel(css: string, separator: string): string[] {
  const pieces: string[] = [];
  let from = 0;
  for (let at = findTopLevel(css, 0, separator); at >= 0; at = findTopLevel(css, from, separator)) {
    pieces.push(css.slice(from, at));
    from = at + 1;
  }
  pieces.push(css.slice(from));
  return pieces;
}

/** Strings closed, brackets matched, no trailing backslash (it would escape what follows it in the output). */
function isWellFormed(css: string): boolean {
  const brackets: string[] = [];
  for (let i = 0; i < css.length; i++) {
    const c = css[i] as string;
    if (c === '\\') {
      if (i === css.length - 1) return false;
      i++;
    } else if (c === '"' || c === "'") {
      const string = stringEnd(css, i);
      if (!string.closed) return false;
      i = string.end - 1;
    } else if (c === '(' || c === '[') brackets.push(c === '(' ? ')' : ']');
    else if ((c === ')' || c === ']') && brackets.pop() !== c) return false;
  }
  return brackets.length === 0;
}

/** Whitespace, and the `<!--`/`-->` that old mail wraps stylesheets in, between rules. */
function skipRuleSeparators(css: string, from: number): number {
  let i = from;
  for (;;) {
    while (i < css.length && /[ \t\n\r\f]/.test(css[i] as string)) i++;
    if (css.startsWith('<!--', i)) i += 4;
    else if (css.startsWith('-->', i)) i += 3;
    else return i;
  }
}

/** Trims CSS whitespace only (an NBSP is part of a value). A loop: `/[ \t]+$/` is quadratic on long runs. */
function cssTrim(css: string): string {
  return trimWhere(css, (c) => c === 32 || c === 9 || c === 10 || c === 13 || c === 12);
}

export function trimWhere(text: string, strip: (code: number) => boolean): string {
  let start = 0;
  let end = text.length;
  while (start < end && strip(text.charCodeAt(start))) start++;
  while (end > start && strip(text.charCodeAt(end - 1))) end--;
  return text.slice(start, end);
}
