import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../src/index.js';

function parse(text: string | Buffer) {
  return parseMessage(typeof text === 'string' ? Buffer.from(text, 'latin1') : text);
}

describe('header decoding', () => {
  it('joins adjacent encoded-words and a multibyte character split across them', () => {
    // "é" is C3 A9 in UTF-8; the sender split it across two words.
    const msg = parse('Subject: =?utf-8?Q?caf=C3?= =?utf-8?Q?=A9?= ok\r\n\r\n');
    expect(msg.headers.get('subject')).toBe('café ok');
  });

  it('keeps whitespace between an encoded-word and plain text, drops it between two words', () => {
    const msg = parse('Subject: =?iso-8859-1?Q?a?=  =?iso-8859-1?Q?b?= c =?utf-8?B?w6Q=?=\r\n\r\n');
    expect(msg.headers.get('subject')).toBe('ab c ä');
  });

  it('decodes ISO-2022-JP words that iconv-lite lacks (through libmime)', () => {
    const msg = parse('Subject: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=\r\n\r\n');
    expect(msg.headers.get('subject')).toBe('テスト');
  });

  it('reads raw UTF-8 headers (RFC 6532) and Latin-1 ones through the fallback, with a defect', () => {
    const utf8 = parse(Buffer.concat([Buffer.from('Subject: '), Buffer.from('Grüße', 'utf8'), Buffer.from('\r\n\r\n')]));
    expect(utf8.headers.get('subject')).toBe('Grüße');
    expect(utf8.defects).toEqual([]);
    const latin1 = parse(Buffer.concat([Buffer.from('Subject: '), Buffer.from('Grüße', 'latin1'), Buffer.from('\r\n\r\n')]));
    expect(latin1.headers.get('subject')).toBe('Grüße');
    expect(latin1.defects.map((d) => d.code)).toEqual(['invalid-8bit-header']);
  });

  it('records an unknown charset and falls back instead of throwing', () => {
    const msg = parse('Subject: =?x-unknown-999?Q?hello?=\r\n\r\n');
    expect(msg.headers.get('subject')).toBe('hello');
    expect(msg.defects).toEqual([{ code: 'unknown-charset', path: '', offset: 0, detail: 'x-unknown-999' }]);
  });

  it('unfolds folded values', () => {
    const msg = parse('Subject: one\r\n two\r\n\tthree\r\n\r\n');
    expect(msg.headers.get('subject')).toBe('one two\tthree');
    expect(msg.headers.getHeader('subject')?.toBuffer().toString()).toBe('Subject: one\r\n two\r\n\tthree\r\n');
  });

  it('keeps duplicate fields in order', () => {
    const msg = parse('Received: a\r\nReceived: b\r\nreceived: c\r\n\r\n');
    expect(msg.headers.getAll('Received')).toEqual(['a', 'b', 'c']);
  });
});

describe('file names', () => {
  it('joins RFC 2231 continuations as bytes before applying the charset', () => {
    // "ä" (C3 A4) is split between segment 0 and segment 1.
    const msg = parse(
      "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*1*=%A4rger.pdf; filename*0*=utf-8''%C3\r\n\r\nx",
    );
    expect(msg.root.filename).toBe('ärger.pdf');
  });

  it('decodes RFC 2231 mixed encoded and plain segments (RFC 2231 section 4.1)', () => {
    const msg = parse(
      "Content-Type: application/x-stuff;\r\n title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n title*2=\"isn't it!\"\r\n\r\n",
    );
    expect(msg.root.contentTypeParams.get('title')).toBe("This is even more ***fun*** isn't it!");
  });

  it('decodes Outlook-style encoded-words inside quoted parameters, also split across continuations', () => {
    const outlook = parse('Content-Type: application/pdf; name="=?UTF-8?B?0YTQsNC50Ls=?= =?UTF-8?B?LnBkZg==?="\r\n\r\n');
    expect(outlook.root.filename).toBe('файл.pdf');
    const split = parse('Content-Type: application/pdf; name*0="=?UTF-8?B?0YTQsNC5"; name*1="0Ls=?="\r\n\r\n');
    expect(split.root.filename).toBe('файл');
  });

  it('lists every candidate name, duplicates of parameters and headers included', () => {
    const msg = parse(
      'Content-Type: application/octet-stream; name="invoice.pdf"\r\n' +
        'Content-Disposition: attachment; filename="a.txt"; filename="b.exe"\r\n' +
        "Content-Disposition: attachment; filename*=utf-8''c.js\r\n\r\n",
    );
    expect(msg.root.filenames).toEqual(['a.txt', 'b.exe', 'c.js', 'invoice.pdf']);
    expect(msg.root.filename).toBe('a.txt');
    expect(msg.defects.map((d) => d.code).sort()).toEqual(['ambiguous-parameter', 'duplicate-content-disposition']);
  });

  it('prefers the RFC 2231 form over the plain one in the same header', () => {
    const msg = parse("Content-Disposition: attachment; filename=\"plain.txt\"; filename*=utf-8''%E2%82%AC.txt\r\n\r\n");
    expect(msg.root.filenames).toEqual(['€.txt', 'plain.txt']);
  });

  it('accepts unquoted names with spaces and comments in structured fields', () => {
    const msg = parse('Content-Type: text/plain (comment); charset=utf-8\r\nContent-Disposition: attachment; filename=my file.exe\r\n\r\n');
    expect(msg.root.contentType).toBe('text/plain');
    expect(msg.root.charset).toBe('utf-8');
    expect(msg.root.filename).toBe('my file.exe');
  });
});

describe('body decoding', () => {
  it('decodes quoted-printable: soft breaks, =XX, and keeps an invalid = literally', () => {
    const msg = parse('Content-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGr=C3=BC=\r\n=C3=9Fe =ZZ end=\r\n');
    expect(msg.root.text()).toBe('Grüße =ZZ end');
    expect(msg.defects.map((d) => d.code)).toEqual(['invalid-quoted-printable']);
  });

  it('decodes base64 leniently, skipping junk, and records it once', () => {
    const msg = parse('Content-Transfer-Encoding: base64\r\n\r\nSGVs*bG8g\r\nd29y!bGQ=\r\n');
    expect(msg.root.text()).toBe('Hello world');
    expect(msg.root.text()).toBe('Hello world');
    expect(msg.defects.map((d) => d.code)).toEqual(['invalid-base64']);
  });

  it('decodes x-uuencode', () => {
    const body = 'begin 644 hi.txt\r\n%:&5L;&\\*\r\n`\r\nend\r\n';
    const msg = parse(`Content-Transfer-Encoding: x-uuencode\r\n\r\n${body}`);
    expect(msg.root.content().toString('latin1')).toBe('hello');
    expect(msg.defects).toEqual([]);
  });

  it('decodes text with the declared charset, UTF-7 included', () => {
    const latin = parse(Buffer.concat([Buffer.from('Content-Type: text/plain; charset=iso-8859-1\r\n\r\n'), Buffer.from('Grüße', 'latin1')]));
    expect(latin.root.text()).toBe('Grüße');
    const utf7 = parse('Content-Type: text/html; charset=utf-7\r\n\r\n+ADw-script+AD4-');
    expect(utf7.root.text()).toBe('<script>');
  });

  it('falls back to UTF-8 then windows-1252 for undeclared or unknown charsets', () => {
    const undeclared = parse(Buffer.concat([Buffer.from('\r\n'), Buffer.from('€ sign', 'utf8')]));
    expect(undeclared.root.text()).toBe('€ sign');
    const unknown = parse(Buffer.concat([Buffer.from('Content-Type: text/plain; charset=x-klingon\r\n\r\n'), Buffer.from([0x80, 0x20, 0x41])]));
    expect(unknown.root.text()).toBe('€ A');
    expect(unknown.defects.map((d) => `${d.code}:${d.detail}`)).toEqual(['unknown-charset:x-klingon']);
  });

  it('decodes nothing until asked', () => {
    const msg = parse('Content-Type: text/plain; charset=x-klingon\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!');
    expect(msg.defects).toEqual([]);
    msg.root.text();
    expect(msg.defects.map((d) => d.code).sort()).toEqual(['invalid-base64', 'unknown-charset']);
  });
});
