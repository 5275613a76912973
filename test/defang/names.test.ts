import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { COMPRESSION_EXTENSIONS, DEFAULT_BANNED_EXTENSIONS } from '../../src/defang/banned-lists.js';
import { distinctNames, escapeName, nameReasons, nameVariants } from '../../src/defang/names.js';
import { parseMessage } from '../../src/index.js';

const banned = new Set(DEFAULT_BANNED_EXTENSIONS);
const codes = (name: string): string[] => [...new Set(nameReasons(name, banned, COMPRESSION_EXTENSIONS).map((r) => r.code))].sort();

describe('file-name checks', () => {
  it.each([
    ['invoice.pdf', []],
    ['evil.exe', ['banned-extension']],
    ['EVIL.EXE', ['banned-extension']],
    ['evil.exe.', ['banned-extension']],
    ['evil.exe   ', ['banned-extension']],
    ['evil.exe . .', ['banned-extension']],
    ['evil.exe\u0000.txt', ['banned-extension', 'control-character-in-name']],
    ['invoice\u202Efdp.exe', ['banned-extension', 'bidi-control-in-name']],
    ['evil\u200B.exe', ['banned-extension', 'zero-width-in-name']],
    ['invoice.pdf.exe', ['banned-extension', 'double-extension']],
    ['photo.jpg            .scr', ['banned-extension', 'double-extension']],
    ['report.{3050F4D8-98B5-11CF-BB82-00AA00BDCE0B}', ['clsid-extension']],
    ['evil.e xe', ['banned-extension']],
    ['evil%2Eexe', ['banned-extension']],
    ['setup.exe.gz', ['banned-extension']],
    ['notes.one', ['banned-extension']],
    ['disk.iso', ['banned-extension']],
    ['macro.docm', ['banned-extension']],
    ['archive.tar.gz', []],
    ['2024.03.report.pdf', []],
  ])('%j -> %j', (name, expected) => {
    expect(codes(name)).toEqual([...expected].sort());
  });

  it('gives every form a program could act on', () => {
    expect(nameVariants('Evil.EXE\u0000.txt ')).toEqual(expect.arrayContaining(['evil.exe\u0000.txt', 'evil.exe', 'evil.exe.txt']));
  });

  it('escapes names to printable ASCII', () => {
    expect(escapeName('a\u202Efdp.exe')).toBe('a\\u202efdp.exe');
    expect(escapeName('x"\r\ny')).toBe('x\\u0022\\u000d\\u000ay');
    expect(escapeName('𝒳')).toBe('\\u{1d4b3}');
  });

  it('treats names that differ only in case, NFC or trailing dots as one', () => {
    expect(distinctNames(['Report.pdf', 'report.pdf.', 'Re\u0301port.pdf'.normalize('NFD')]).length).toBeLessThanOrEqual(2);
    expect(distinctNames(['safe.txt', 'evil.exe'])).toEqual(['safe.txt', 'evil.exe']);
  });

  it('never throws and always escapes to printable ASCII (fuzz)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), (name) => {
        nameReasons(name, banned, COMPRESSION_EXTENSIONS);
        expect(escapeName(name)).toMatch(/^[\x20-\x7e]*$/);
      }),
      { numRuns: 3000 },
    );
  });

  it('finds a banned extension however the name is padded, cased or hidden (fuzz)', () => {
    const noise = fc.constantFrom('', ' ', '.', '\u200b', '\u202e', '\u0000', '  . ');
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9]{1,12}$/), fc.constantFrom('exe', 'scr', 'js', 'lnk', 'iso'), noise, fc.boolean(), (stem, ext, tail, upper) => {
        const name = `${stem}.${upper ? ext.toUpperCase() : ext}${tail}`;
        expect(codes(name)).toContain('banned-extension');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('parameter normalisation (fuzz)', () => {
  it('never throws on any Content-Type / Content-Disposition parameters and finds names however encoded', () => {
    const piece = fc.constantFrom(
      'filename', 'name', 'filename*', 'filename*0', 'filename*1*', 'filename*0*', '=', ';', '"', "'", "utf-8''", '%C3%A9', '%2E',
      '.exe', 'evil', ' ', '\t', '\\', '(', ')', '=?utf-8?B?ZXZpbC5leGU=?=', '=?x?Q?a_b?=', 'a', '\u202e', '\u0000',
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), fc.boolean(), (pieces, disposition) => {
        const header = `${disposition ? 'Content-Disposition: attachment' : 'Content-Type: application/octet-stream'}; ${pieces.join('')}`;
        const part = parseMessage(Buffer.from(`${header}\r\n\r\nbody`, 'utf8')).root;
        for (const name of part.filenames) nameReasons(name, banned, COMPRESSION_EXTENSIONS);
      }),
      { numRuns: 3000 },
    );
  });
});
