import { describe, expect, it } from 'vitest';
import { loadCorpus } from '../../fixtures/corpus.js';
import { defang, parseMessage, type PolicyInput } from '../../src/index.js';

const EXE = Buffer.from('MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00PE\x00\x00', 'latin1');

function mixed(attachmentHeaders: string, body: Buffer | string, extraRoot = ''): Buffer {
  const encoded = (typeof body === 'string' ? Buffer.from(body) : body).toString('base64');
  return Buffer.from(
    [
      'From: a@example.com',
      'To: b@example.org',
      'Subject: test',
      extraRoot,
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Hello.',
      '--b',
      attachmentHeaders,
      'Content-Transfer-Encoding: base64',
      '',
      encoded,
      '--b--',
      '',
    ]
      .filter((l, i) => l !== '' || i !== 3)
      .join('\r\n'),
  );
}

describe('defang', () => {
  it('leaves a clean message byte-identical, without a report header', () => {
    const input = mixed('Content-Type: application/pdf; name="report.pdf"', '%PDF-1.4\n1 0 obj\n');
    const msg = parseMessage(input);
    const report = defang(msg);
    expect(report.verdict).toBe('clean');
    expect(report.parts).toEqual([]);
    expect(msg.toBuffer().equals(input)).toBe(true);
  });

  it('replaces a banned attachment with a warning, keeping every other byte', () => {
    const input = mixed('Content-Type: application/octet-stream; name="invoice.pdf.exe"', EXE);
    const msg = parseMessage(input);
    const report = defang(msg);
    expect(report.verdict).toBe('changed');
    expect(report.parts.map((p) => [p.path, p.action, p.sniffedType])).toEqual([['2', 'replace', 'pe']]);
    expect(report.parts[0]?.reasons.map((r) => r.code).sort()).toEqual(['banned-extension', 'double-extension', 'executable-content']);
    const out = parseMessage(msg.toBuffer());
    expect(out.headers.get('x-milterkit-defang')).toBe('changed; 2 replace banned-extension,double-extension,executable-content');
    expect(out.part('1')?.text()).toBe('Hello.');
    const warning = out.part('2');
    expect(warning?.filename).toBe('WARNING.txt');
    expect(warning?.text()).toContain('Original name:  "invoice.pdf.exe"');
    expect(warning?.text()).toContain(report.parts[0]?.sha256);
    expect(msg.toBuffer().includes(EXE.toString('base64'))).toBe(false);
    // Up to the attachment the message is unchanged, but for the added report header.
    const before = input.toString('latin1').split('--b\r\nContent-Type: application')[0] as string;
    const written = msg.toBuffer().toString('latin1').replace(/X-Milterkit-Defang: [^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*/, '');
    expect(written.startsWith(`${before}--b\r\n`)).toBe(true);
    expect(written.endsWith('\r\n--b--\r\n')).toBe(true);
  });

  it('catches a renamed executable by its content', () => {
    const msg = parseMessage(mixed('Content-Type: application/pdf', EXE));
    expect(defang(msg).parts.map((p) => p.reasons.map((r) => r.code))).toEqual([['executable-content']]);
  });

  it('escapes attacker bytes in the warning and the report', () => {
    const msg = parseMessage(mixed("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe", EXE));
    const report = defang(msg);
    expect(report.parts[0]?.names).toEqual(['invoice\\u202efdp.exe']);
    const text = parseMessage(msg.toBuffer()).part('2')?.text() ?? '';
    expect(text).toContain('invoice\\u202efdp.exe');
    expect(/[\u202a-\u202e]/.test(text)).toBe(false);
    expect(report.header).toMatch(/^[\x20-\x7e]*$/);
  });

  it('keeps the headers of a single-part message whose body is the danger', () => {
    const input = Buffer.from(`From: a@example.com\r\nSubject: invoice\r\nContent-Type: application/x-msdownload\r\nContent-Transfer-Encoding: base64\r\n\r\n${EXE.toString('base64')}\r\n`);
    const msg = parseMessage(input);
    expect(defang(msg).verdict).toBe('changed');
    const out = parseMessage(msg.toBuffer());
    expect(out.headers.get('subject')).toBe('invoice');
    expect(out.root.contentType).toBe('text/plain');
    expect(out.root.text()).toContain('banned-type');
  });

  it('sanitizes an HTML body and keeps its text in its charset', () => {
    const html = '<p>Grüße — 東京 <b>bold</b><img src=x onerror=alert(1)></p><script>alert(2)</script>';
    const input = Buffer.concat([
      Buffer.from('Content-Type: text/html; charset=iso-8859-1\r\n\r\n'),
      Buffer.from('<p>Grüße <b>bold</b><img src=x onerror=alert(1)></p><script>alert(2)</script>', 'latin1'),
    ]);
    const msg = parseMessage(input);
    const report = defang(msg);
    expect(report.verdict).toBe('changed');
    expect(report.parts[0]?.action).toBe('sanitize');
    const out = parseMessage(msg.toBuffer()).root.text();
    expect(out).toContain('Grüße');
    expect(out).toContain('<b>bold</b>');
    expect(out).not.toMatch(/script|onerror/i);
    void html;
  });

  it('rejects message/partial and quarantines duplicate boundaries, leaving the message as it was', () => {
    const partial = parseMessage('Content-Type: message/partial; id="x"; number=1; total=2\r\n\r\nContent-Type: application/x-msdownload\r\n');
    expect(defang(partial).verdict).toBe('reject');
    const input = Buffer.from('Content-Type: multipart/mixed; boundary="a"; boundary="b"\r\n\r\n--a\r\n\r\nx\r\n--b\r\n\r\ny\r\n--a--\r\n');
    const msg = parseMessage(input);
    const report = defang(msg);
    expect(report.verdict).toBe('quarantine');
    expect(report.parts[0]?.reasons.map((r) => r.code)).toEqual(['ambiguous-structure']);
  });

  it('applies per-domain overrides and custom actions', () => {
    const input = mixed('Content-Type: application/octet-stream; name="tool.exe"', EXE);
    const policy: PolicyInput = {
      actions: { 'banned-extension': 'drop', 'executable-content': 'drop' },
      overrides: [{ senderDomains: ['trusted.example'], policy: { actions: { 'banned-extension': 'accept', 'executable-content': 'accept' } } }],
    };
    const dropped = parseMessage(input);
    expect(defang(dropped, policy, { envelope: { sender: 'x@evil.example' } }).parts[0]?.action).toBe('drop');
    expect([...parseMessage(dropped.toBuffer()).walk()].length).toBe(2);
    const trusted = parseMessage(input);
    expect(defang(trusted, policy, { envelope: { sender: 'bob@mail.trusted.example' } }).verdict).toBe('clean');
    expect(trusted.toBuffer().equals(input)).toBe(true);
  });

  it('passes ordinary mail (the corpus easy-ham) through unchanged and byte-identical, but for real findings', () => {
    const ham = loadCorpus().filter((m) => m.name.startsWith('easy-ham'));
    expect(ham.length).toBe(3900);
    const changed: string[] = [];
    for (const m of ham) {
      const msg = parseMessage(m.bytes);
      const report = defang(msg);
      if (report.verdict === 'clean') expect(msg.toBuffer().equals(m.bytes)).toBe(true);
      else changed.push(`${m.name.slice(0, 16)} ${report.header}`);
    }
    // Each of these carries what the policy bans: a shell script, an Internet shortcut, a web page, a form.
    expect(changed).toEqual([
      'easy-ham-1/00166 changed; 2 sanitize html-active-content',
      'easy-ham-1/00775 changed; 2 replace banned-extension',
      'easy-ham-1/00993 changed; 2 replace script-content',
      'easy-ham-1/01561 changed; 2 replace script-content',
      'easy-ham-2/01187 changed; 2 replace banned-extension,html-attachment',
      'easy-ham-2/01318 changed; root sanitize html-active-content',
    ]);
  });
});
