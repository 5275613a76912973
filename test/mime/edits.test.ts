import { describe, expect, it } from 'vitest';
import { createPart, parseMessage } from '../../src/index.js';

const CRLF_MESSAGE = [
  'From: Alice <alice@example.com>',
  'To: Bob <bob@example.org>',
  'Subject: Report',
  'X-Long-Header: this header is folded by its author',
  '  over two lines, and must stay exactly like this',
  'Content-Type: multipart/mixed; boundary="outer"',
  '',
  'preamble text',
  '--outer',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  'Hello Bob.',
  '--outer  ',
  'Content-Type: application/octet-stream; name="data.bin"',
  'Content-Transfer-Encoding: base64',
  'Content-Disposition: attachment; filename="data.bin"',
  '',
  'AAECAwQFBgcICQ==',
  '--outer',
  'Content-Type: text/html; charset=utf-8',
  '',
  '<p>hi</p>',
  '--outer--',
  'epilogue',
  '',
].join('\r\n');

function parse(text: string) {
  return parseMessage(Buffer.from(text, 'latin1'));
}

describe('editing the tree', () => {
  it('leaves an untouched message byte-identical, sharing the input memory', () => {
    const input = Buffer.from(CRLF_MESSAGE, 'latin1');
    const msg = parseMessage(input);
    const out = msg.toBuffer();
    expect(out.equals(input)).toBe(true);
    expect(out.buffer).toBe(input.buffer);
  });

  it('re-folds only the header that was edited, with the part line ending', () => {
    const msg = parse(CRLF_MESSAGE);
    msg.headers.set('Subject', 'Quarterly report, revised after the review meeting with the whole team on Monday');
    const out = msg.toBuffer().toString('latin1');
    const expected = CRLF_MESSAGE.replace(
      'Subject: Report\r\n',
      'Subject: Quarterly report, revised after the review meeting with the whole\r\n team on Monday\r\n',
    );
    expect(out).toBe(expected);
  });

  it('encodes non-ASCII header values as RFC 2047 words and reads them back', () => {
    const msg = parse(CRLF_MESSAGE);
    msg.headers.add('X-Note', 'Grüße aus Köln');
    const out = msg.toBuffer().toString('latin1');
    expect(out).toContain('X-Note: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n\r\npreamble');
    expect(parseMessage(Buffer.from(out, 'latin1')).headers.get('x-note')).toBe('Grüße aus Köln');
  });

  it('flattens CR/LF in a header value instead of letting it inject fields', () => {
    const msg = parse(CRLF_MESSAGE);
    msg.headers.set('Subject', 'hello\r\nBcc: victim@example.com');
    const reparsed = parseMessage(msg.toBuffer());
    expect(reparsed.headers.get('bcc')).toBeUndefined();
    expect(reparsed.headers.get('subject')).toBe('hello Bcc: victim@example.com');
  });

  it('refuses a field name that is none (a line break, a colon, a space, nothing), and flattens a NUL in a value', () => {
    const msg = parseMessage('Subject: hi\r\n\r\nbody\r\n');
    for (const name of ['X-Bad\r\nBcc', 'X:Y', 'X Y', '', 'Ünï']) expect(() => msg.headers.add(name, 'v'), JSON.stringify(name)).toThrow(RangeError);
    expect(() => msg.headers.set('X\nBcc', 'v')).toThrow(RangeError);
    msg.headers.add('X-Nul', 'a\0b');
    expect(msg.toBuffer().toString('latin1')).toBe('Subject: hi\r\nX-Nul: a b\r\n\r\nbody\r\n');
  });

  it('keeps the other parts and all delimiters byte-identical when one part is replaced', () => {
    const msg = parse(CRLF_MESSAGE);
    const attachment = msg.part('2');
    expect(attachment?.filename).toBe('data.bin');
    attachment?.replaceWith(createPart({ contentType: 'text/plain', content: 'removed', filename: 'WARNING.txt' }));
    const out = msg.toBuffer().toString('latin1');
    const [before] = CRLF_MESSAGE.split('Content-Type: application/octet-stream');
    const after = CRLF_MESSAGE.slice(CRLF_MESSAGE.indexOf('\r\n--outer\r\nContent-Type: text/html'));
    expect(out.startsWith(before as string)).toBe(true);
    expect(out.endsWith(after)).toBe(true);
    expect(out).toContain('--outer  \r\nContent-Type: text/plain; charset=utf-8; name=WARNING.txt\r\n');
    const reparsed = parseMessage(Buffer.from(out, 'latin1'));
    expect(reparsed.part('2')?.text()).toBe('removed');
    expect(reparsed.part('2')?.filename).toBe('WARNING.txt');
    expect(reparsed.part('3')?.text()).toBe('<p>hi</p>');
    expect(reparsed.defects).toEqual([]);
  });

  it('removes a middle part with its delimiter and renumbers the rest', () => {
    const msg = parse(CRLF_MESSAGE);
    msg.part('2')?.remove();
    const out = msg.toBuffer().toString('latin1');
    const start = CRLF_MESSAGE.indexOf('\r\n--outer  ');
    const end = CRLF_MESSAGE.indexOf('\r\n--outer\r\nContent-Type: text/html');
    expect(out).toBe(CRLF_MESSAGE.slice(0, start) + CRLF_MESSAGE.slice(end));
    expect([...parseMessage(Buffer.from(out, 'latin1')).walk()].map((p) => `${p.path}:${p.contentType}`)).toEqual([
      ':multipart/mixed',
      '1:text/plain',
      '2:text/html',
    ]);
  });

  it('removes the first part when the preamble is empty without adding a blank line', () => {
    const text = 'Content-Type: multipart/mixed; boundary=b\n\n--b\n\nfirst\n--b\n\nsecond\n--b--\n';
    const msg = parse(text);
    msg.part('1')?.remove();
    expect(msg.toBuffer().toString('latin1')).toBe('Content-Type: multipart/mixed; boundary=b\n\n--b\n\nsecond\n--b--\n');
  });

  it('writes new content with a suitable transfer encoding and the line ending of the message', () => {
    const lf = CRLF_MESSAGE.replace(/\r\n/g, '\n');
    const msg = parse(lf);
    const text = msg.part('1');
    text?.setContent('Grüße from the team\nline two');
    const binary = msg.part('2');
    binary?.setContent(Buffer.from([0, 1, 2, 250, 251, 252]), { contentType: 'application/octet-stream' });
    const out = msg.toBuffer().toString('latin1');
    expect(out).not.toContain('\r');
    expect(out).toContain('Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nGr=C3=BC=C3=9Fe from the team\nline two\n--outer  \n');
    expect(out).toContain('Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=data.bin\n\nAAEC+vv8\n--outer\n');
    const reparsed = parseMessage(Buffer.from(out, 'latin1'));
    expect(reparsed.part('1')?.text()).toBe('Grüße from the team\nline two');
    expect([...(reparsed.part('2')?.content() ?? [])]).toEqual([0, 1, 2, 250, 251, 252]);
  });

  it('never writes new text that could be taken for a delimiter', () => {
    const msg = parse(CRLF_MESSAGE);
    msg.part('1')?.setContent('--outer\r\nContent-Type: application/x-msdownload\r\n\r\nMZ');
    const reparsed = parseMessage(msg.toBuffer());
    expect([...reparsed.walk()].length).toBe(4);
    expect(reparsed.part('1')?.text()).toBe('--outer\r\nContent-Type: application/x-msdownload\r\n\r\nMZ');
  });

  it('appends a new part to a multipart and builds a multipart from scratch', () => {
    const msg = parse(CRLF_MESSAGE);
    msg.root.append(createPart({ contentType: 'text/plain', content: 'appended' }));
    const reparsed = parseMessage(msg.toBuffer());
    expect(reparsed.part('4')?.text()).toBe('appended');
    expect(reparsed.part('3')?.text()).toBe('<p>hi</p>');

    const mixed = createPart({ contentType: 'multipart/mixed' });
    mixed.append(createPart({ contentType: 'text/plain', content: 'one' }));
    mixed.append(createPart({ contentType: 'image/png', content: Buffer.from([137, 80, 78, 71]), filename: 'a.png' }));
    msg.part('1')?.replaceWith(mixed);
    const nested = parseMessage(msg.toBuffer());
    expect(nested.part('1')?.contentType).toBe('multipart/mixed');
    expect(nested.part('1.1')?.text()).toBe('one');
    expect(nested.part('1.2')?.filename).toBe('a.png');
    expect([...(nested.part('1.2')?.content() ?? [])]).toEqual([137, 80, 78, 71]);
    expect(nested.defects).toEqual([]);
  });

  it('replaces the root of a message', () => {
    const msg = parse(CRLF_MESSAGE);
    msg.root.replaceWith(createPart({ contentType: 'text/plain', content: 'all gone', headers: { Subject: 'x' } }));
    const reparsed = parseMessage(msg.toBuffer());
    expect(reparsed.headers.get('subject')).toBe('x');
    expect(reparsed.root.text()).toBe('all gone');
  });

  it('edits inside an embedded message re-encode a base64 message/rfc822 part', () => {
    const inner = 'Subject: inner\r\nContent-Type: text/plain\r\n\r\nsecret body\r\n';
    const text = [
      'Content-Type: multipart/mixed; boundary=b',
      '',
      '--b',
      'Content-Type: message/rfc822',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from(inner).toString('base64'),
      '--b--',
      '',
    ].join('\r\n');
    const msg = parse(text);
    expect(msg.part('1.1')?.headers.get('subject')).toBe('inner');
    msg.part('1.1')?.headers.set('Subject', 'changed');
    const reparsed = parseMessage(msg.toBuffer());
    expect(reparsed.part('1.1')?.headers.get('subject')).toBe('changed');
    expect(reparsed.part('1.1')?.text()).toBe('secret body\r\n');
  });

  it('adds a header after a last field that has no line break', () => {
    const msg = parse('Subject: only headers');
    msg.headers.add('X-Seen', 'yes');
    expect(msg.toBuffer().toString('latin1')).toBe('Subject: only headers\r\nX-Seen: yes\r\n');
  });
});
