import { describe, expect, it } from 'vitest';
import { isMbox, splitMbox, toSafeFilename } from '../../src/index.js';

describe('mbox', () => {
  it('splits on From lines, drops the separating blank line and undoes mboxrd quoting', () => {
    const mbox = 'From a@x Tue Nov 24 10:00:00 2026\nSubject: one\n\nbody\n>From me\n>>From you\n\nFrom b@x Tue Nov 24 11:00:00 2026\r\nSubject: two\r\n\r\nsecond\r\n\r\n';
    expect(isMbox(Buffer.from(mbox))).toBe(true);
    expect(splitMbox(Buffer.from(mbox)).map((m) => m.toString())).toEqual([
      'Subject: one\n\nbody\nFrom me\n>From you\n',
      'Subject: two\r\n\r\nsecond\r\n',
    ]);
  });

  it('takes a file that is not an mbox as one message', () => {
    expect(isMbox(Buffer.from('Subject: x\n\nFrom here\n'))).toBe(false);
    expect(splitMbox(Buffer.from('Subject: x\n\nFrom here\n')).length).toBe(1);
  });
});

describe('toSafeFilename', () => {
  it.each([
    ['report.pdf', 'report.pdf'],
    ['../../etc/passwd', '_.._etc_passwd'],
    ['C:\\Windows\\evil.exe', 'C__Windows_evil.exe'],
    ['invoice\u202Efdp.exe', 'invoice_fdp.exe'],
    ['zero\u200Bwidth.txt', 'zero_width.txt'],
    ['trailing.exe. . ', 'trailing.exe'],
    ['.hidden', 'hidden'],
    ['CON.txt', '_CON.txt'],
    ['nul', '_nul'],
    ['a\u0000b.txt', 'a_b.txt'],
    ['', 'attachment'],
    ['...', 'attachment'],
  ])('%j becomes %j', (name, safe) => {
    expect(toSafeFilename(name)).toBe(safe);
  });

  it('shortens long names and keeps their extension', () => {
    const safe = toSafeFilename(`${'é'.repeat(300)}.pdf`);
    expect(Buffer.byteLength(safe)).toBeLessThanOrEqual(200);
    expect(safe.endsWith('.pdf')).toBe(true);
  });
});
