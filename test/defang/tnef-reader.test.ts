import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readTnef, type TnefListing } from '../../src/defang/tnef-reader.js';
import type { ArchiveLimits } from '../../src/defang/types.js';
import {
  ATT_ATTACH_DATA,
  ATT_ATTACH_TITLE,
  ATT_ATTACHMENT,
  IID_IMESSAGE,
  LEVEL_ATTACHMENT,
  LEVEL_MESSAGE,
  MV_FLAG,
  PR_ATTACH_DATA_OBJ,
  PR_ATTACH_FILENAME,
  PR_ATTACH_LONG_FILENAME,
  PT_BINARY,
  PT_LONG,
  PT_OBJECT,
  PT_STRING8,
  PT_UNICODE,
  mapiProperties,
  tnefAttachment,
  tnefAttribute,
  unicodeValue,
  writeTnef,
  type TnefAttachment,
} from './archive-writers.js';

const LIMITS: ArchiveLimits = { maxDepth: 5, maxMembers: 100, maxTotalBytes: 1_000_000, maxRatio: 100 };

function listed(listing: TnefListing): [string, string | undefined][] {
  return listing.files.map((f) => [f.name, f.data?.toString('latin1')]);
}

describe('readTnef', () => {
  it('lists each attachment by its title with its data', () => {
    const tnef = writeTnef([
      tnefAttribute(LEVEL_MESSAGE, 0x00018004, Buffer.from('Subject\0')),
      ...tnefAttachment({ title: 'report.pdf', data: Buffer.from('%PDF-1.4') }),
      ...tnefAttachment({ title: 'setup.exe', data: Buffer.from('MZ\x90\x00', 'latin1') }),
    ]);
    const listing = readTnef(tnef, LIMITS);
    expect(listing.problems).toEqual([]);
    expect(listed(listing)).toEqual([
      ['report.pdf', '%PDF-1.4'],
      ['setup.exe', 'MZ\x90\x00'],
    ]);
    expect(listing.files.every((f) => !f.encrypted)).toBe(true);
  });

  it('lists every name an attachment carries (title and MAPI file names), sharing the data', () => {
    const tnef = writeTnef(
      tnefAttachment({
        title: 'INVOIC~1.PDF',
        data: Buffer.from('MZ'),
        props: [
          { type: PT_LONG, id: 0x0e21, value: Buffer.from([1, 0, 0, 0]) }, // PR_ATTACH_NUM
          { type: PT_UNICODE, id: PR_ATTACH_LONG_FILENAME, value: [unicodeValue('invoice.pdf.exe')] },
          { type: PT_STRING8, id: PR_ATTACH_FILENAME, value: [Buffer.from('INVOIC~1.PDF\0')] },
        ],
      }),
    );
    const listing = readTnef(tnef, LIMITS);
    expect(listing.problems).toEqual([]);
    expect(listed(listing)).toEqual([
      ['INVOIC~1.PDF', 'MZ'],
      ['invoice.pdf.exe', 'MZ'],
    ]);
  });

  it('reads data held only in PR_ATTACH_DATA_OBJ, past named and multi-valued properties', () => {
    const tnef = writeTnef(
      tnefAttachment({
        props: [
          { type: PT_LONG, id: 0x8005, namedId: 0x8233, value: Buffer.from([7, 0, 0, 0]) },
          { type: PT_STRING8 | MV_FLAG, id: 0x1234, value: [Buffer.from('one\0'), Buffer.from('three\0')] },
          { type: PT_BINARY, id: PR_ATTACH_DATA_OBJ, value: [Buffer.from('#!/bin/sh\nrm -rf ~\n')] },
          { type: PT_STRING8, id: PR_ATTACH_LONG_FILENAME, value: [Buffer.from('run.sh\0')] },
        ],
      }),
    );
    const listing = readTnef(tnef, LIMITS);
    expect(listing.problems).toEqual([]);
    expect(listed(listing)).toEqual([['run.sh', '#!/bin/sh\nrm -rf ~\n']]);
  });

  it('returns an embedded message as a nested TNEF stream to recurse into', () => {
    const inner = writeTnef(tnefAttachment({ title: 'payload.js', data: Buffer.from('WScript.Shell') }));
    const tnef = writeTnef(
      tnefAttachment({
        title: 'Fwd: invoice',
        props: [{ type: PT_OBJECT, id: PR_ATTACH_DATA_OBJ, value: [Buffer.concat([IID_IMESSAGE, inner])] }],
      }),
    );
    const listing = readTnef(tnef, LIMITS);
    expect(listing.problems).toEqual([]);
    expect(listing.files.map((f) => f.name)).toEqual(['Fwd: invoice']);
    const nested = listing.files[0]?.data;
    expect(nested?.equals(inner)).toBe(true);
    expect(listed(readTnef(nested as Buffer, LIMITS))).toEqual([['payload.js', 'WScript.Shell']]);
  });

  it('lists both data when attAttachData and PR_ATTACH_DATA_OBJ differ, and one when they agree', () => {
    const attachment = (obj: string): TnefAttachment => ({
      title: 'doc.txt',
      data: Buffer.from('plain text'),
      props: [{ type: PT_BINARY, id: PR_ATTACH_DATA_OBJ, value: [Buffer.from(obj)] }],
    });
    expect(listed(readTnef(writeTnef(tnefAttachment(attachment('MZ other'))), LIMITS))).toEqual([
      ['doc.txt', 'plain text'],
      ['doc.txt', 'MZ other'],
    ]);
    expect(listed(readTnef(writeTnef(tnefAttachment(attachment('plain text'))), LIMITS))).toEqual([['doc.txt', 'plain text']]);
  });

  it('matches attributes by id whatever the type word, and keeps attributes before attAttachRendData', () => {
    const tnef = writeTnef([
      tnefAttribute(LEVEL_ATTACHMENT, (ATT_ATTACH_TITLE & 0xffff) | 0x00060000, Buffer.from('odd.exe\0')),
      tnefAttribute(LEVEL_ATTACHMENT, ATT_ATTACH_DATA, Buffer.from('MZ')),
    ]);
    expect(listed(readTnef(tnef, LIMITS))).toEqual([['odd.exe', 'MZ']]);
  });

  it('keeps names found before a malformed property list, and says it is corrupt', () => {
    const props = mapiProperties([
      { type: PT_STRING8, id: PR_ATTACH_LONG_FILENAME, value: [Buffer.from('first.exe\0')] },
      { type: 0x0abc, id: 0x3001, value: Buffer.alloc(4) }, // unknown type: the list cannot be read further
      { type: PT_STRING8, id: PR_ATTACH_FILENAME, value: [Buffer.from('never.txt\0')] },
    ]);
    const tnef = writeTnef([...tnefAttachment({ title: 'title.txt' }), tnefAttribute(LEVEL_ATTACHMENT, ATT_ATTACHMENT, props)]);
    const listing = readTnef(tnef, LIMITS);
    expect(listing.problems).toEqual(['corrupt']);
    expect(listing.files.map((f) => f.name)).toEqual(['title.txt', 'first.exe']);
  });

  it('says when the checksum is wrong, and still lists the attachment', () => {
    const tnef = writeTnef([
      ...tnefAttachment({ title: 'a.exe' }),
      tnefAttribute(LEVEL_ATTACHMENT, ATT_ATTACH_DATA, Buffer.from('MZ'), 1),
    ]);
    const listing = readTnef(tnef, LIMITS);
    expect(listing.problems).toEqual(['corrupt']);
    expect(listed(listing)).toEqual([['a.exe', 'MZ']]);
  });

  it('says when the stream is cut short, and lists what came before', () => {
    const tnef = writeTnef([...tnefAttachment({ title: 'a.exe', data: Buffer.from('MZ') }), ...tnefAttachment({ title: 'b.exe', data: Buffer.from('MZ') })]);
    const listing = readTnef(tnef.subarray(0, tnef.length - 3), LIMITS);
    expect(listing.problems).toEqual(['truncated']);
    expect(listing.files.map((f) => f.name)).toEqual(['a.exe', 'b.exe']);
    expect(listing.files[1]?.data).toBeUndefined();
  });

  it('says when the input is not TNEF', () => {
    for (const input of [Buffer.alloc(0), Buffer.from('PK\x03\x04'), Buffer.from([0x78, 0x9f, 0x3e])]) {
      expect(readTnef(input, LIMITS)).toEqual({ files: [], problems: ['not-tnef'] });
    }
  });

  it('stops at the file and size limits', () => {
    const many = writeTnef(Array.from({ length: 10 }, (_, n) => tnefAttachment({ title: `f${n}.txt`, data: Buffer.alloc(100, n) })).flat());
    const capped = readTnef(many, { ...LIMITS, maxMembers: 3 });
    expect(capped.problems).toEqual(['file-limit']);
    expect(capped.files).toHaveLength(3);
    const small = readTnef(many, { ...LIMITS, maxTotalBytes: 250 });
    expect(small.problems).toEqual(['size-limit']);
    expect(small.files.map((f) => f.data !== undefined)).toEqual([true, true, ...Array(8).fill(false)]);
  });
});

describe('readTnef properties', () => {
  const attachment: fc.Arbitrary<TnefAttachment> = fc.record({
    title: fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9_. -]{0,20}$/),
    data: fc.uint8Array({ maxLength: 500 }).map((a) => Buffer.from(a)),
  });
  const stream = fc.array(attachment, { maxLength: 5 }).map((list) => ({ list, tnef: writeTnef(list.flatMap(tnefAttachment)) }));

  it('lists every attachment of a well-formed stream', () => {
    fc.assert(
      fc.property(stream, ({ list, tnef }) => {
        const listing = readTnef(tnef, LIMITS);
        expect(listing.problems).toEqual([]);
        expect(listing.files.map((f) => [f.name, f.data])).toEqual(list.map((a) => [a.title, a.data]));
      }),
    );
  });

  function checkBounded(input: Buffer, limits: ArchiveLimits): void {
    const started = performance.now();
    const listing = readTnef(input, limits);
    expect(performance.now() - started).toBeLessThan(500);
    expect(listing.files.length).toBeLessThanOrEqual(limits.maxMembers);
    expect(new Set(listing.problems).size).toBe(listing.problems.length);
  }

  it('never throws on random bytes after the signature', () => {
    const signature = writeTnef([]).subarray(0, 6);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => checkBounded(Buffer.concat([signature, Buffer.from(bytes)]), LIMITS)),
      { numRuns: 500 },
    );
  });

  it('never throws on mutated streams, property lists included', () => {
    const withProps = fc.record({ list: fc.array(attachment, { maxLength: 3 }), name: fc.string({ maxLength: 20 }) }).map(({ list, name }) =>
      writeTnef([
        ...list.flatMap(tnefAttachment),
        ...tnefAttachment({
          props: [
            { type: PT_UNICODE, id: PR_ATTACH_LONG_FILENAME, value: [unicodeValue(name)] },
            { type: PT_OBJECT, id: PR_ATTACH_DATA_OBJ, value: [Buffer.concat([IID_IMESSAGE, Buffer.from(name)])] },
          ],
        }),
      ]),
    );
    const mutation = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), cut: fc.boolean() });
    fc.assert(
      fc.property(withProps, fc.array(mutation, { minLength: 1, maxLength: 6 }), (tnef, mutations) => {
        let bytes = Buffer.from(tnef);
        for (const m of mutations) {
          const at = m.at % bytes.length;
          if (m.cut) bytes = bytes.subarray(0, Math.max(at, 6));
          else bytes[at] = m.value;
        }
        checkBounded(bytes, { ...LIMITS, maxMembers: 10 });
      }),
      { numRuns: 1000 },
    );
  });

  it('stays linear on huge counts', () => {
    const props = Buffer.alloc(400_000, 0xff);
    props.writeUInt32LE(0xffffffff, 0);
    for (let at = 4; at + 8 <= props.length; at += 8) {
      props.writeUInt16LE(PT_STRING8 | MV_FLAG, at);
      props.writeUInt16LE(0x3001, at + 2);
      props.writeUInt32LE(0, at + 4);
    }
    checkBounded(writeTnef([tnefAttribute(LEVEL_ATTACHMENT, ATT_ATTACHMENT, props)]), LIMITS);
    const tiny = tnefAttribute(LEVEL_ATTACHMENT, ATT_ATTACH_TITLE, Buffer.from('x'));
    checkBounded(writeTnef(Array(100_000).fill(tiny) as Buffer[]), LIMITS);
  });
});
