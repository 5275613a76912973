/**
 * Allow-list HTML sanitiser for e-mail bodies (research §3.2 #20; §1.3: script removal has to be an allow-list, not
 * a parser hack), and a plain-text excerpt for warning texts.
 *
 * The input is parsed with htmlparser2 and the output is rebuilt from the parse events: only allow-listed elements
 * and attributes are written, text and attribute values are re-escaped, URLs and CSS are checked, and every element
 * is closed explicitly. Whatever htmlparser2 made of malformed or obfuscated markup, a browser reading the output
 * sees only what was checked, with no `<` that is not one of our tags.
 *
 * `removed` lists what was active or dangerous (scripts, handlers, script URLs, embedded documents, forms, CSS
 * expressions ...), once per kind and name, in the order found. Inert markup (ordinary comments, unknown tags such
 * as Outlook's `<o:p>`, relative links, malformed CSS) leaves the output without a report, so ordinary mail does not
 * look "active". Where a browser may read markup that htmlparser2 reads as a comment or as raw text (conditional
 * comments, CDATA, `--!>`, `</style/`), that text is inspected as markup and reported.
 */
import { convert, type HtmlToTextOptions } from 'html-to-text';
import { type Handler, Parser } from 'htmlparser2';
import { filterDeclarations, filterStylesheet, INVISIBLE, stripCssComments, trimWhere } from './css-filter.js';

export interface RemovedItem {
  kind: 'element' | 'attribute' | 'url' | 'css';
  /** ASCII: an element or attribute name, a URL scheme, or a CSS property, function or token. */
  name: string;
}

export interface SanitizedHtml {
  html: string;
  removed: RemovedItem[];
}

// ---------------------------------------------------------------------------------------------------------------
// Allow-lists and block-lists
// ---------------------------------------------------------------------------------------------------------------

/** Allowed on every kept element. */
const GLOBAL_ATTRIBUTES = ['class', 'id', 'style', 'title', 'dir', 'lang'];

const CELL_ATTRIBUTES = ['width', 'height', 'align', 'valign', 'bgcolor', 'background', 'colspan', 'rowspan', 'nowrap'];
const COLUMN_ATTRIBUTES = ['span', 'width', 'align', 'valign'];
const SECTION_ATTRIBUTES = ['align', 'valign', 'bgcolor'];
const ALIGN = ['align'];

/** Kept elements and their attributes besides the global ones. */
const ELEMENT_ATTRIBUTES: Readonly<Record<string, readonly string[]>> = {
  // The document skeleton; head keeps only title and style (HEAD_CONTENT).
  html: [],
  head: [],
  title: [],
  body: ['bgcolor', 'background', 'text', 'link', 'vlink', 'alink'],
  // Links and images: URLs are checked by URL_POLICIES.
  a: ['href', 'name', 'target'],
  img: ['src', 'alt', 'width', 'height', 'border', 'align', 'hspace', 'vspace'],
  // Tables, with the presentational attributes newsletters are laid out with.
  table: ['width', 'height', 'align', 'bgcolor', 'background', 'border', 'cellpadding', 'cellspacing', 'summary'],
  caption: ALIGN,
  colgroup: COLUMN_ATTRIBUTES,
  col: COLUMN_ATTRIBUTES,
  thead: SECTION_ATTRIBUTES,
  tbody: SECTION_ATTRIBUTES,
  tfoot: SECTION_ATTRIBUTES,
  tr: ['align', 'valign', 'bgcolor', 'background', 'height'],
  td: CELL_ATTRIBUTES,
  th: CELL_ATTRIBUTES,
  // Blocks and headings.
  p: ALIGN,
  div: ALIGN,
  center: [],
  blockquote: ['type'],
  pre: [],
  hr: ['width', 'size', 'align', 'color', 'noshade'],
  br: ['clear'],
  h1: ALIGN,
  h2: ALIGN,
  h3: ALIGN,
  h4: ALIGN,
  h5: ALIGN,
  h6: ALIGN,
  address: [],
  section: [],
  article: [],
  header: [],
  footer: [],
  main: [],
  aside: [],
  nav: [],
  figure: [],
  figcaption: [],
  // Lists.
  ul: ['type'],
  ol: ['type', 'start', 'reversed'],
  li: ['type', 'value'],
  dl: [],
  dt: [],
  dd: [],
  // Inline formatting.
  span: [],
  font: ['color', 'face', 'size'],
  b: [],
  i: [],
  u: [],
  s: [],
  strike: [],
  em: [],
  strong: [],
  small: [],
  big: [],
  sub: [],
  sup: [],
  tt: [],
  code: [],
  kbd: [],
  samp: [],
  var: [],
  mark: [],
  ins: [],
  del: [],
  abbr: [],
  cite: [],
  q: [],
  nobr: [],
  wbr: [],
};

/** Kept elements that have no content and no end tag. */
const VOID_ELEMENTS = new Set(['br', 'hr', 'img', 'col', 'wbr']);

/** Elements a document has one of. */
const ONCE_PER_DOCUMENT = new Set(['html', 'head', 'body', 'title']);

/** What a kept head may hold; anything else kept closes the head first, as a browser would. */
const HEAD_CONTENT = new Set(['title', 'style']);

/** Active or embedding elements: removed with everything inside them, and reported. */
const ACTIVE_ELEMENTS = new Set([
  'script', 'iframe', 'frame', 'frameset', 'object', 'embed', 'applet', 'param', 'base', 'svg', 'math', 'template',
  'input', 'textarea', 'select', 'option', 'optgroup', 'datalist', 'keygen', 'isindex', 'audio', 'video', 'canvas',
  'bgsound', 'layer', 'ilayer', 'portal', 'fencedframe', 'noembed', 'noframes',
]);

/**
 * Removed but their content kept, and reported. A form's text is what the reader sees; a button keeps its label.
 * noscript: mail clients run no scripts, so its content is what they show; the tag itself goes because a renderer
 * with scripting on reads its content as raw text (a classic mutation-XSS wrapper).
 */
const ACTIVE_WRAPPERS = new Set(['form', 'button', 'noscript']);

/** Attributes reported when found (they are never kept): they act, fetch or embed without being `on*` handlers. */
const ACTIVE_ATTRIBUTES = new Set([
  'action', 'formaction', 'srcdoc', 'download', 'ping', 'xlink:href', 'datasrc', 'datafld', 'dataformatas', 'dynsrc',
  'lowsrc',
]);

/** `<meta http-equiv>` values that only describe the document (anything else, e.g. refresh, is reported). */
const DESCRIPTIVE_HTTP_EQUIV = new Set(['content-type', 'content-language', 'x-ua-compatible']);

/** Schemes reported wherever they appear as an attribute value. */
const SCRIPT_SCHEMES = new Set(['javascript', 'vbscript', 'livescript', 'mocha']);

interface UrlPolicy {
  schemes: ReadonlySet<string>;
  /** `#anchor` links within the message. */
  fragments: boolean;
  /** `data:image/(png|gif|jpeg|webp)`. */
  dataImages: boolean;
}

const LINK_URLS: UrlPolicy = { schemes: new Set(['http', 'https', 'mailto', 'cid']), fragments: true, dataImages: false };
const IMAGE_URLS: UrlPolicy = { schemes: new Set(['http', 'https', 'cid']), fragments: false, dataImages: true };
/** Legacy table/body backgrounds: images too, but data: stays confined to img src. */
const BACKGROUND_URLS: UrlPolicy = { ...IMAGE_URLS, dataImages: false };
const URL_POLICIES: ReadonlyMap<string, UrlPolicy> = new Map([
  ['href', LINK_URLS],
  ['src', IMAGE_URLS],
  ['background', BACKGROUND_URLS],
]);
const DATA_IMAGE = /^data:image\/(?:png|gif|jpeg|webp)[;,]/i;
/** Links that leave the message get these, so the opened page can neither script the opener nor learn its URL. */
const EXTERNAL_LINK_REL = 'noopener noreferrer';

/**
 * htmlparser2's implied end tags (openImpliesClose in its Parser), restricted to kept elements. The output closes
 * these explicitly, so reparsing it gives the same tree: that is what makes sanitising idempotent.
 */
const P_CLOSERS = [
  'p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'address', 'article', 'aside', 'blockquote', 'div', 'dl', 'figcaption',
  'figure', 'footer', 'header', 'hr', 'main', 'nav', 'ol', 'pre', 'section', 'table', 'ul',
];
const IMPLIED_CLOSES: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['tr', new Set(['tr', 'th', 'td'])],
  ['th', new Set(['th'])],
  ['td', new Set(['thead', 'th', 'td'])],
  ['body', new Set(['head'])],
  ['li', new Set(['li'])],
  ['dd', new Set(['dd', 'dt'])],
  ['dt', new Set(['dd', 'dt'])],
  ['tbody', new Set(['thead', 'tbody'])],
  ['tfoot', new Set(['thead', 'tbody'])],
  ...P_CLOSERS.map((name): [string, ReadonlySet<string>] => [name, new Set(['p'])]),
]);

/**
 * Raw-text elements that htmlparser2 ends at `</name` + space or `>`, while a browser also ends them at `</name/`.
 * Such a sequence inside their text means a browser would read what follows as markup.
 */
const RAW_TEXT_EARLY_END: ReadonlyMap<string, RegExp> = new Map([
  ['style', /<\/style\//i],
  ['title', /<\/title\//i],
  ['xmp', /<\/xmp\//i],
]);

/**
 * Comments that a renderer may read as markup: Outlook and old IE conditional comments, CDATA (a browser ends it at
 * the first `>`), `<!-->`/`<!--->` and `--!>` (a browser ends the comment there, htmlparser2 does not).
 */
const MARKUP_IN_COMMENT = /^\s*\[(?:if|endif|cdata\[)|^-?>|--!>|<!\[endif\]/i;

/** A doctype worth keeping: it selects the rendering mode newsletters were designed for. */
const HTML_DOCTYPE = /^!doctype\s+html(?:\s[^<>]*)?$/i;

/**
 * Elements nested deeper than this are treated as empty, their content following them as siblings (Chromium's
 * parser flattens at the same depth). Reported as the element "#deep-nesting", so the rebuilt output is used.
 */
const MAX_DEPTH = 512;

/** Longest name put in a report (names come from the mail). */
const MAX_REPORTED_NAME = 40;

// ---------------------------------------------------------------------------------------------------------------
// Sanitiser
// ---------------------------------------------------------------------------------------------------------------

export function sanitizeHtml(html: string): SanitizedHtml {
  const removed = new Map<string, RemovedItem>();
  const report: Report = (kind, name) => {
    const item = { kind, name: asciiName(name) };
    const key = `${item.kind}:${item.name}`;
    if (!removed.has(key)) removed.set(key, item);
  };
  const output = rebuild(html, report, true);
  return { html: output, removed: [...removed.values()] };
}

type Report = (kind: RemovedItem['kind'], name: string) => void;

/** What is done with an element of the input (and, for `drop`, everything inside it). */
type Treatment = 'keep' | 'unwrap' | 'drop' | 'style';

interface Frame {
  readonly name: string;
  readonly treatment: Treatment;
}

/**
 * Parses `html` and writes the allowed part of it. `inspectComments` is false when the input is itself the text of
 * a comment being inspected: there are no comments inside comments, and it bounds the work to one extra pass.
 */
function rebuild(html: string, report: Report, inspectComments: boolean): string {
  const out: string[] = [];
  /** Elements open in the input (htmlparser2's stack). */
  const open: Frame[] = [];
  /** Kept elements open in the output; a subset of `open`, in the same order. */
  const written: Frame[] = [];
  const skeleton = new Set<string>();
  let dropping: Frame | undefined;
  let styleText: string[] | undefined;
  /** Something other than whitespace or the doctype has been written. */
  let started = false;
  let doctype = false;

  const top = (): Frame | undefined => written[written.length - 1];
  const closeTop = (): void => {
    const frame = written.pop();
    if (frame) out.push(`</${frame.name}>`);
  };

  const treat = (name: string, attribs: Record<string, string>): Treatment => {
    if (ACTIVE_ELEMENTS.has(name)) {
      report('element', name);
      return 'drop';
    }
    if (ACTIVE_WRAPPERS.has(name)) {
      report('element', name);
      return 'unwrap';
    }
    if (name === 'meta') {
      const equiv = (attribs['http-equiv'] ?? '').trim().toLowerCase();
      if (equiv !== '' && !DESCRIPTIVE_HTTP_EQUIV.has(equiv)) report('element', name);
      return 'drop';
    }
    if (name === 'style') return 'style';
    if (name === 'title') return top()?.name === 'head' && !skeleton.has(name) ? 'keep' : 'drop';
    if (!Object.hasOwn(ELEMENT_ATTRIBUTES, name)) return 'unwrap';
    // The skeleton is kept once, in its place; a misplaced or repeated html, head or body is unwrapped.
    switch (name) {
      case 'html':
        return skeleton.has(name) || started ? 'unwrap' : 'keep';
      case 'head':
        return skeleton.has(name) || skeleton.has('body') || written.some((f) => f.name !== 'html') ? 'unwrap' : 'keep';
      case 'body':
        return skeleton.has(name) || written.some((f) => f.name !== 'html' && f.name !== 'head') ? 'unwrap' : 'keep';
      default:
        return 'keep';
    }
  };

  const write = (frame: Frame, attribs: Record<string, string>): void => {
    const closes = IMPLIED_CLOSES.get(frame.name);
    for (let t = top(); t; t = top()) {
      if (closes?.has(t.name) || (t.name === 'head' && !HEAD_CONTENT.has(frame.name))) closeTop();
      else break;
    }
    out.push(`<${frame.name}${filterAttributes(frame.name, attribs, report)}>`);
    started = true;
    if (ONCE_PER_DOCUMENT.has(frame.name)) skeleton.add(frame.name);
    if (!VOID_ELEMENTS.has(frame.name)) written.push(frame);
  };

  const tooDeep = (): boolean => {
    if (open.length < MAX_DEPTH) return false;
    report('element', '#deep-nesting');
    return true;
  };
  const parser = new DepthLimitedParser(
    tooDeep,
    {
      onopentag(name, attribs) {
        if (dropping) {
          open.push({ name, treatment: 'drop' });
          return;
        }
        const treatment = treat(name, attribs);
        const frame: Frame = { name, treatment };
        open.push(frame);
        if (treatment === 'drop') dropping = frame;
        else if (treatment === 'style') styleText = [];
        else if (treatment === 'keep') write(frame, attribs);
        // Unwrapped elements are not written, but what their attributes would have done is still reported.
        else filterAttributes(name, attribs, report);
      },
      ontext(text) {
        const early = RAW_TEXT_EARLY_END.get(open[open.length - 1]?.name ?? '');
        if (early?.test(text)) report('element', open[open.length - 1]?.name ?? '');
        if (dropping) return;
        if (styleText) {
          styleText.push(text);
          return;
        }
        const clean = withoutNul(text);
        if (/\S/.test(clean)) {
          // Text does not belong in the head: a browser would close it here.
          if (top()?.name === 'head') closeTop();
          started = true;
        }
        out.push(escapeText(clean));
      },
      onclosetag(name) {
        const frame = open[open.length - 1];
        // htmlparser2 also closes a tag cut off by the end of the input, which was never opened.
        if (frame?.name !== name) return;
        open.pop();
        if (dropping) {
          if (frame === dropping) dropping = undefined;
          return;
        }
        if (frame.treatment === 'style' && styleText) {
          const css = filterStylesheet(styleText.join(''), report);
          styleText = undefined;
          if (css !== '') out.push(`<style>${css}</style>`);
          started = true;
        } else if (top() === frame) {
          closeTop();
        }
      },
      oncomment(comment) {
        if (inspectComments && MARKUP_IN_COMMENT.test(comment)) rebuild(comment, report, false);
      },
      onprocessinginstruction(name, data) {
        if (name === '!doctype' && !started && !doctype && !dropping && HTML_DOCTYPE.test(data)) {
          out.push(`<${data.replace(/\0/g, '')}>`);
          doctype = true;
        }
      },
    },
  );
  parser.parseComplete(html);
  while (written.length > 0) closeTop();
  return out.join('');
}

/** How the sanitizer has htmlparser2 read mail HTML (the benchmark tokenizes with the same options). */
export const HTML_PARSER_OPTIONS = { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true, recognizeSelfClosing: false } as const;

/**
 * htmlparser2 with nesting capped: every end tag searches its open-element stack, so deep nesting plus stray end
 * tags would be quadratic (0.45 MB took 4 s). `isVoidElement` is its extension point; whether a tag is too deep is
 * decided when its name is read, so the open and the implied close of one tag agree.
 */
class DepthLimitedParser extends Parser {
  private flatten = false;

  constructor(
    private readonly tooDeep: () => boolean,
    handler: Partial<Handler>,
  ) {
    super(handler, HTML_PARSER_OPTIONS);
  }

  override onopentagname(start: number, endIndex: number): void {
    this.flatten = this.tooDeep();
    super.onopentagname(start, endIndex);
  }

  override onclosetag(start: number, endIndex: number): void {
    // End tags still close what is open (and `</p>` may open a p), whatever the depth.
    this.flatten = false;
    super.onclosetag(start, endIndex);
  }

  protected override isVoidElement(name: string): boolean {
    return this.flatten || super.isVoidElement(name);
  }
}

/**
 * The allowed attributes of a kept element, serialised; for an element that is not written (no allow-list entry)
 * it only reports.
 */
function filterAttributes(element: string, attribs: Record<string, string>, report: Report): string {
  const specific = Object.hasOwn(ELEMENT_ATTRIBUTES, element) ? ELEMENT_ATTRIBUTES[element] : undefined;
  let out = '';
  let externalLink = false;
  for (const [name, raw] of Object.entries(attribs)) {
    const value = withoutNul(raw);
    const allowed = specific !== undefined && (GLOBAL_ATTRIBUTES.includes(name) || specific.includes(name));
    if (name === 'style') {
      const css = filterDeclarations(stripCssComments(value), report).join('; ');
      if (allowed && css !== '') out += ` style="${escapeAttribute(css)}"`;
      continue;
    }
    if (!allowed) {
      if (/^on./.test(name) || ACTIVE_ATTRIBUTES.has(name)) report('attribute', name);
      const scheme = urlSchemes(value).loose;
      if (scheme !== undefined && SCRIPT_SCHEMES.has(scheme)) report('url', scheme);
      continue;
    }
    const policy = URL_POLICIES.get(name);
    if (policy) {
      const url = checkUrl(value, policy, report);
      if (url === undefined) continue;
      if (element === 'a' && /^https?:/i.test(url)) externalLink = true;
      out += ` ${name}="${escapeAttribute(url)}"`;
    } else if (name === 'target') {
      // Only a new window: `_top` or `_parent` would navigate the webmail page around the message.
      if (value.trim().toLowerCase() === '_blank') out += ' target="_blank"';
    } else {
      out += ` ${name}="${escapeAttribute(value)}"`;
    }
  }
  if (externalLink) out += ` rel="${EXTERNAL_LINK_REL}"`;
  return out;
}

/** The URL as it will be written, or undefined when the policy does not allow it (reported if it had a scheme). */
function checkUrl(value: string, policy: UrlPolicy, report: Report): string | undefined {
  // What a browser strips before parsing: tab and newline anywhere, C0 controls and spaces at both ends.
  const url = trimWhere(value.replace(/[\t\n\r]/g, ''), (c) => c <= 0x20);
  const { exact, loose } = urlSchemes(url);
  // Both readings must agree, so an obfuscated script scheme cannot pass as a relative URL.
  if (exact !== undefined && exact === loose) {
    if (policy.schemes.has(exact)) return url;
    if (exact === 'data' && policy.dataImages && DATA_IMAGE.test(url)) return url;
  } else if (exact === undefined && loose === undefined && policy.fragments && url.startsWith('#')) {
    return url;
  }
  const scheme = loose ?? exact;
  if (scheme !== undefined && !policy.schemes.has(scheme)) report('url', scheme);
  return undefined;
}

const URL_SCHEME = /^([a-z][a-z0-9+.-]*):/i;
const PRINTABLE_ASCII = /^[\x21-\x7e]*$/;

/**
 * The scheme as a browser reads it (`exact`), and as read after removing anything that could hide one (`loose`:
 * compatibility forms folded, all whitespace, controls and invisible characters removed), both in lower case.
 */
function urlSchemes(url: string): { exact: string | undefined; loose: string | undefined } {
  // Printable ASCII has nothing to strip or fold: both readings are the plain one (most URLs, most values).
  if (PRINTABLE_ASCII.test(url)) {
    const plain = url.includes(':') ? URL_SCHEME.exec(url)?.[1]?.toLowerCase() : undefined;
    return { exact: plain, loose: plain };
  }
  const scheme = URL_SCHEME;
  const exact = scheme.exec(trimWhere(url.replace(/[\t\n\r]/g, ''), (c) => c <= 0x20))?.[1]?.toLowerCase();
  const loose = scheme.exec(url.normalize('NFKC').replace(INVISIBLE, ''))?.[1]?.toLowerCase();
  return { exact, loose };
}

// ---------------------------------------------------------------------------------------------------------------
// Escaping
// ---------------------------------------------------------------------------------------------------------------

// Most text and values need no escaping: a test first spares them the replace and its callback.
const TEXT_SPECIALS = /[&<>]/;
const ATTRIBUTE_SPECIALS = /[&<>"]/;
const ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
const escapeOne = (c: string): string => ESCAPES[c] as string;

function escapeText(text: string): string {
  return TEXT_SPECIALS.test(text) ? text.replace(/[&<>]/g, escapeOne) : text;
}

function escapeAttribute(value: string): string {
  return ATTRIBUTE_SPECIALS.test(value) ? value.replace(/[&<>"]/g, escapeOne) : value;
}

/** NUL is dropped from text and attribute values (browsers turn it into U+FFFD or drop it). */
function withoutNul(text: string): string {
  return text.includes('\0') ? text.replace(/\0/g, '') : text;
}

/** Names in reports come from the mail: printable ASCII only, bounded. */
function asciiName(name: string): string {
  return name.replace(/[^\x21-\x7e]/g, '?').slice(0, MAX_REPORTED_NAME);
}

// ---------------------------------------------------------------------------------------------------------------
// Excerpt
// ---------------------------------------------------------------------------------------------------------------

/** Enough HTML for any excerpt: html-to-text is much slower than the sanitiser on huge bodies. */
const EXCERPT_INPUT_LIMIT = 1 << 20;

const EXCERPT_OPTIONS: HtmlToTextOptions = {
  wordwrap: false,
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, options: { uppercase: false } })),
  ],
};

/**
 * A one-line plain-text excerpt of at most `maxChars` characters (code points), ending in "…" when cut. Controls
 * and bidi embedding/override/isolate characters are removed: cut off, they would spill into the text around it.
 */
export function htmlExcerpt(html: string, maxChars: number): string {
  if (maxChars <= 0) return '';
  const text = convert(html.slice(0, EXCERPT_INPUT_LIMIT), EXCERPT_OPTIONS)
    .replace(/[\0-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  // Code points, not UTF-16 units, so no surrogate pair is cut in half.
  const chars = Array.from(text.slice(0, 2 * maxChars + 2));
  if (chars.length <= maxChars) return text;
  const cut = chars.slice(0, maxChars - 1).join('');
  // Back up to a word boundary unless the cut is on one, or backing up would lose too much.
  const space = chars[maxChars - 1] === ' ' ? cut.length : cut.lastIndexOf(' ');
  return `${(space >= cut.length * 0.6 ? cut.slice(0, space) : cut).trimEnd()}…`;
}
