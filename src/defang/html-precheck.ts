/**
 * A fast, conservative test for "this HTML may hold active content": one regular-expression pass over the
 * raw text, used to skip the full sanitizer (a parse and a rebuild) for HTML bodies that have nothing to
 * remove, so that inert mail is neither rewritten nor slowed down.
 *
 * It looks for substrings, not for parsed structure, so that no tokenizer difference between this check,
 * the sanitizer and a browser can hide anything from it: whatever the sanitizer reports needs one of these
 * substrings. False alarms only cost a sanitizer run. test/defang/html-precheck.test.ts holds it to that
 * on the corpus, the fixtures and fuzzed markup.
 */
const ACTIVE_ELEMENTS = [
  'script', 'iframe', 'frame', 'object', 'embed', 'applet', 'param', 'base', 'svg', 'math', 'template', 'input',
  'textarea', 'select', 'option', 'datalist', 'keygen', 'isindex', 'audio', 'video', 'canvas', 'bgsound', 'layer',
  'ilayer', 'portal', 'fencedframe', 'noembed', 'noframes', 'form', 'button', 'noscript', 'link', 'xmp',
  'plaintext', 'listing', 'xml', 'import',
];
const ACTIVE_ATTRIBUTES = ['action', 'formaction', 'srcdoc', 'download', 'ping', 'xlink', 'datasrc', 'datafld', 'dataformatas', 'dynsrc', 'lowsrc'];
/** Attributes whose value the sanitizer reads as a URL (and a few that browsers fetch). */
const URL_ATTRIBUTES = ['href', 'src', 'background', 'poster', 'srcset', 'codebase', 'classid', 'cite', 'longdesc', 'usemap', 'profile', 'data'];
/** Script schemes, letter by letter with anything a browser skips in between ("java\tscript"). */
const SCRIPT_SCHEMES = ['javascript', 'vbscript', 'livescript', 'mocha'].map((s) => s.split('').join('[\\s\\x00-\\x1f]*'));

const TRIGGERS = new RegExp(
  [
    // Elements that are removed; the end of raw text a browser sees earlier than htmlparser2.
    `<\\s*/?\\s*(?:${ACTIVE_ELEMENTS.join('|')})`,
    '</(?:style|title|xmp)/',
    // meta that does more than describe the document (refresh...).
    'http-equiv\\s*=\\s*(?!["\'`]?\\s*(?:content-type|content-language|x-ua-compatible)["\'`\\s>])',
    // Event handlers (not the "ontent=" of content=) and attributes that act, fetch or embed.
    '(?<![a-z])on[a-z]+\\s*=',
    `(?:${ACTIVE_ATTRIBUTES.join('|')})\\s*=`,
    // A URL attribute whose value has a scheme other than http, https, mailto, cid.
    `(?:${URL_ATTRIBUTES.join('|')})\\s*=\\s*["'\`]?[\\s\\x00-\\x1f]*(?!(?:https?|mailto|cid):)[a-z][a-z0-9+.\\-\\s\\x00-\\x1f]*:`,
    ...SCRIPT_SCHEMES,
    // Character references in the ASCII range can spell a scheme; CSS escapes and full-width forms too.
    '&#0*(?:[0-9]{1,2}|1[01][0-9]|12[0-7])(?![0-9])|&#x0*[0-7]?[0-9a-f](?![0-9a-f])',
    '&(?:colon|tab|newline|lpar|rpar|sol|bsol);',
    '\\\\[0-9a-f]',
    '[\\uff01-\\uff5e]',
    // CSS that fetches from elsewhere or runs.
    'url\\s*\\((?!\\s*["\']?\\s*(?:https?|cid):)|expression|behavior|binding|@import|image(?:-set)?\\s*\\(',
    // CSS comments can split a keyword (ex/**/pression).
    '/\\*',
    // Markup a renderer may find in comments, CDATA or processing instructions.
    '<!\\s*\\[|\\[\\s*(?:if|endif)|--!>|<!--->|<!-->|<\\?',
  ].join('|'),
  'i',
);

export function mayHaveActiveContent(html: string): boolean {
  return TRIGGERS.test(html);
}
