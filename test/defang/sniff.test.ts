import { describe, expect, it } from 'vitest';
import { isEicar, oleHasMacros, sniff } from '../../src/defang/sniff.js';

const pad = (magic: Buffer, at = 0, size = 64): Buffer => {
  const out = Buffer.alloc(Math.max(size, at + magic.length));
  magic.copy(out, at);
  return out;
};

describe('sniffing content by magic', () => {
  it.each([
    ['pe', Buffer.from('MZ\x90\x00', 'latin1')],
    ['elf', Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1])],
    ['mach-o', Buffer.from([0xcf, 0xfa, 0xed, 0xfe])],
    ['java-class', Buffer.from([0xca, 0xfe, 0xba, 0xbe])],
    ['lnk', Buffer.from('4c0000000114020000000000c000000000000046', 'hex')],
    ['ole', Buffer.from('d0cf11e0a1b11ae1', 'hex')],
    ['zip', Buffer.from('PK\x03\x04', 'latin1')],
    ['rar', Buffer.from('Rar!\x1a\x07\x00', 'latin1')],
    ['7z', Buffer.from('377abcaf271c', 'hex')],
    ['cab', Buffer.from('MSCF')],
    ['gzip', Buffer.from([0x1f, 0x8b, 8])],
    ['vhdx', Buffer.from('vhdxfile')],
    ['onenote', Buffer.from('e4525c7b8cd8a74daeb15378d02996d3', 'hex')],
    ['tnef', Buffer.from([0x78, 0x9f, 0x3e, 0x22])],
    ['pdf', Buffer.from('%PDF-1.7\n')],
    ['html', Buffer.from('\ufeff  <!DOCTYPE html><html>')],
    ['svg', Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg">')],
    ['hta', Buffer.from('<html><head><HTA:APPLICATION id="x"></head>')],
    ['script', Buffer.from('#!/bin/sh\nrm -rf ~\n')],
    ['script', Buffer.from('@ECHO OFF\r\ndel *.*\r\n')],
    ['script', Buffer.from('Set o = CreateObject("WScript.Shell")')],
    ['script', Buffer.from('powershell -enc SQBFAFgA')],
    ['image', Buffer.from('89504e470d0a1a0a', 'hex')],
    ['unknown', Buffer.from('Hello, this is a letter.')],
  ])('%s', (type, bytes) => {
    expect(sniff(bytes)).toBe(type);
  });

  it('finds ISO 9660 and UDF descriptors and VHD/DMG footers', () => {
    expect(sniff(pad(Buffer.from('CD001'), 0x8001))).toBe('iso');
    expect(sniff(pad(Buffer.from('NSR02'), 0x8801))).toBe('udf');
    const vhd = Buffer.alloc(4096);
    vhd.write('conectix', 4096 - 512);
    expect(sniff(vhd)).toBe('vhd');
    const dmg = Buffer.alloc(4096);
    dmg.write('koly', 4096 - 512);
    expect(sniff(dmg)).toBe('dmg');
  });

  it('recognises the EICAR test file, with trailing whitespace but not embedded in more', () => {
    const eicar = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
    expect(isEicar(Buffer.from(eicar))).toBe(true);
    expect(isEicar(Buffer.from(`${eicar}\r\n`))).toBe(true);
    expect(isEicar(Buffer.from(`${eicar} and more text`))).toBe(false);
  });

  it('spots VBA storage in OLE documents', () => {
    const doc = Buffer.concat([Buffer.from('d0cf11e0a1b11ae1', 'hex'), Buffer.alloc(100), Buffer.from('_VBA_PROJECT', 'utf16le')]);
    expect(oleHasMacros(doc)).toBe(true);
    expect(oleHasMacros(Buffer.concat([Buffer.from('d0cf11e0a1b11ae1', 'hex'), Buffer.alloc(100)]))).toBe(false);
  });
});
