/**
 * A fast, conservative test for "this HTML may hold active content": one regular-expression pass over the
 * raw text, used to skip the full sanitizer (a parse and a rebuild) for the majority of HTML bodies that
 * have nothing to remove.
 *
 * It looks for substrings, not for parsed structure, so that no tokenizer difference between this check,
 * the sanitizer and a browser can hide anything from it: everything the sanitizer reports needs one of
 * these substrings to be present. False alarms only cost the full sanitizer run. The test suite holds it
 * to that against every attack vector of the sanitizer's tests and every HTML body of the corpus.
 */
const ACTIVE_ELEMENTS = [
  'script', 'iframe', 'frame', 'object', 'embed', 'applet', 'param', 'base', 'svg', 'math', 'template', 'input',
  'textarea', 'select', 'option', 'datalist', 'keygen', 'isindex', 'audio', 'video', 'canvas', 'bgsound', 'layer',
  'ilayer', 'portal', 'fencedframe', 'noembed', 'noframes', 'form', 'button', 'noscript', 'meta', 'link', 'style',
  'xmp', 'plaintext', 'listing', 'xml', 'import', 'title',
];
const ACTIVE_ATTRIBUTES = ['action', 'formaction', 'srcdoc', 'download', 'ping', 'xlink', 'datasrc', 'datafld', 'dataformatas', 'dynsrc', 'lowsrc'];

const TRIGGERS = new RegExp(
  [
    // An element that is removed, or that holds text the sanitizer inspects (style, title, xmp).
    `<\\s*/?\\s*(?:${ACTIVE_ELEMENTS.join('|')})`,
    // Event handlers and attributes that act, fetch or embed.
    'on[a-z]+\\s*=',
    `(?:${ACTIVE_ATTRIBUTES.join('|')})\\s*=`,
    // A URL attribute whose value has a scheme other than http, https, mailto, cid (whitespace and
    // control characters inside a scheme included: "java\tscript:").
    '=\\s*["\'`]?[\\s\\x00-\\x1f]*(?!(?:https?|mailto|cid):)[a-z][a-z0-9+.\\-\\s\\x00-\\x1f]*:',
    // Character references can spell anything, CSS escapes too.
    '&#|&(?:colon|tab|newline|lpar|rpar|sol|bsol|quot|apos|grave);',
    '\\\\[0-9a-f]',
    // CSS that fetches or runs.
    'url\\s*\\(|expression|behavior|binding|@import|image(?:-set)?\\s*\\(|javascript|vbscript|livescript|mocha',
    // Markup a renderer may find in comments, CDATA or processing instructions.
    '<!\\s*\\[|\\[\\s*(?:if|endif)|--!>|<!--->|<!-->|<\\?',
  ].join('|'),
  'i',
);

export function mayHaveActiveContent(html: string): boolean {
  return TRIGGERS.test(html);
}
