import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { readZip, type ZipListing } from '../../src/defang/zip-reader.js';
import type { ArchiveLimits } from '../../src/defang/types.js';
import { extraField, METHOD_DEFLATE, METHOD_STORED, writeZip, type ZipEntry } from './archive-writers.js';

const LIMITS: ArchiveLimits = { maxDepth: 5, maxMembers: 1000, maxTotalBytes: 50_000_000, maxRatio: 100 };
const work = mkdtempSync(join(tmpdir(), 'zip-reader-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function hasTool(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const hasPython = hasTool('python3', ['-c', 'import zipfile']);
const hasInfoZip = hasTool('zip', ['-v']) && hasTool('unzip', ['-v']);

interface OracleEntry {
  name: string;
  compressedSize: number;
  uncompressedSize: number;
  method: number;
  encrypted: boolean;
  sha256: string | null;
}

/** Python's zipfile view: the last end record, offsets adjusted for prepended bytes. */
const PYTHON_LISTING = `
import hashlib, json, sys, zipfile
out = []
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        encrypted = bool(i.flag_bits & 1)
        digest = None if encrypted else hashlib.sha256(z.read(i)).hexdigest()
        out.append(dict(name=i.filename, compressedSize=i.compress_size, uncompressedSize=i.file_size,
                        method=i.compress_type, encrypted=encrypted, sha256=digest))
print(json.dumps(out))
`;

function save(bytes: Buffer, name = 'test.zip'): string {
  const path = join(work, name);
  writeFileSync(path, bytes);
  return path;
}

function pythonListing(bytes: Buffer): OracleEntry[] {
  return JSON.parse(execFileSync('python3', ['-c', PYTHON_LISTING, save(bytes)], { encoding: 'utf8' })) as OracleEntry[];
}

function sha256(data: Buffer | undefined): string | null {
  return data ? createHash('sha256').update(data).digest('hex') : null;
}

/** Ours in the oracle's shape: the central directory's view, one entry per member. */
function centralView(listing: ZipListing): OracleEntry[] {
  return listing.members
    .filter((m) => m.seenIn !== 'local')
    .map((m) => ({
      name: m.name,
      compressedSize: m.compressedSize,
      uncompressedSize: m.uncompressedSize,
      method: m.method,
      encrypted: m.encrypted,
      sha256: m.encrypted ? null : sha256(m.data),
    }));
}

function names(listing: ZipListing): string[] {
  return listing.members.map((m) => m.name);
}

const text = (n: number): string => `line of text ${n}\n`.repeat(n + 1);

describe('readZip on well-formed archives (cross-checked with Python zipfile)', () => {
  const cases: [string, ZipEntry[]][] = [
    ['stored and deflated members', [
      { name: 'readme.txt', data: text(10), method: METHOD_STORED },
      { name: 'docs/report.csv', data: text(200), method: METHOD_DEFLATE },
      { name: 'empty.bin', data: '', method: METHOD_STORED },
    ]],
    ['a UTF-8 flagged name and a CP437 one', [
      { name: 'résumé–2024.txt', data: 'utf8 name' },
      { name: Buffer.from([0x81, 0x62, 0x65, 0x72, 0x2e, 0x74, 0x78, 0x74]), data: 'cp437 name' }, // "über.txt"
    ]],
    ['data descriptors (streaming writers)', [
      { name: 'a.txt', data: text(30), dataDescriptor: true },
      { name: 'b.txt', data: text(3), dataDescriptor: true, method: METHOD_STORED },
    ]],
  ];
  for (const [title, entries] of cases) {
    it.skipIf(!hasPython)(title, () => {
      const zip = writeZip(entries);
      const listing = readZip(zip, LIMITS);
      expect(listing.problems).toEqual([]);
      expect(listing.members.every((m) => m.seenIn === 'both')).toBe(true);
      expect(centralView(listing)).toEqual(pythonListing(zip));
    });
  }

  it('decodes the CP437 name as Python does', () => {
    const listing = readZip(writeZip([{ name: Buffer.from([0x81, 0x62, 0x65, 0x72, 0xe1, 0x9c]), data: 'x' }]), LIMITS);
    expect(names(listing)).toEqual(['überß£']);
  });

  it.skipIf(!hasInfoZip || !hasPython)('lists what Info-ZIP zip writes, as Python and zipinfo do', () => {
    const dir = mkdtempSync(join(work, 'infozip-'));
    writeFileSync(join(dir, 'small.txt'), 'hello\n');
    // Hex digests: text that deflates, but less than the ratio limit.
    writeFileSync(join(dir, 'big.txt'), Array.from({ length: 200 }, (_, n) => createHash('sha256').update(`${n}`).digest('hex')).join('\n'));
    writeFileSync(join(dir, 'random.bin'), createHash('sha512').update('seed').digest());
    execFileSync('zip', ['-q', '-X', 'plain.zip', 'small.txt', 'big.txt', 'random.bin'], { cwd: dir });
    execFileSync('zip', ['-q', '-X', '-e', '-P', 'secret', 'locked.zip', 'small.txt', 'big.txt'], { cwd: dir });
    for (const archive of ['plain.zip', 'locked.zip']) {
      const zip = readFileSync(join(dir, archive));
      const listing = readZip(zip, LIMITS);
      expect(centralView(listing)).toEqual(pythonListing(zip));
      const zipinfo = execFileSync('unzip', ['-Z1', join(dir, archive)], { encoding: 'utf8' }).trim().split('\n');
      expect(names(listing)).toEqual(zipinfo);
      expect(listing.members.every((m) => m.seenIn === 'both')).toBe(true);
      expect(listing.problems).toEqual(archive === 'locked.zip' ? ['encrypted'] : []);
    }
  });

  it.skipIf(!hasPython)('reads zip64 extra fields and end records (Python force_zip64)', () => {
    const path = join(work, 'zip64.zip');
    execFileSync('python3', ['-c', `
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:
    for n in range(3):
        with z.open(f'member{n}.txt', 'w', force_zip64=True) as f:
            f.write(b'zip64 member %d\\n' % n * 50)
`, path]);
    const zip = readFileSync(path);
    const listing = readZip(zip, LIMITS);
    expect(listing.problems).toEqual([]);
    expect(centralView(listing)).toEqual(pythonListing(zip));
  });

  it('reads zip64 values for saturated central fields and the zip64 end record', () => {
    const plain = writeZip([{ name: 'a.txt', data: 'zip64 data', method: METHOD_STORED }]);
    const zip = toZip64(plain);
    const listing = readZip(zip, LIMITS);
    expect(listing.problems).toEqual([]);
    expect(listing.members.map((m) => [m.name, m.compressedSize, m.data?.toString()])).toEqual([['a.txt', 10, 'zip64 data']]);
  });

  it('lists an empty archive as empty', () => {
    expect(readZip(writeZip([]), LIMITS)).toEqual({ members: [], problems: [] });
  });
});

/**
 * Rewrites a one-member archive as zip64: saturated sizes and offset in the central header with a zip64
 * extra field, then a zip64 end record and locator before a saturated end record.
 */
function toZip64(plain: Buffer): Buffer {
  const cdStart = plain.readUInt32LE(plain.length - 6);
  const local = plain.subarray(0, cdStart);
  const header = Buffer.from(plain.subarray(cdStart, cdStart + 46));
  const nameLength = header.readUInt16LE(28);
  const name = plain.subarray(cdStart + 46, cdStart + 46 + nameLength);
  const wide = Buffer.alloc(24);
  wide.writeBigUInt64LE(BigInt(header.readUInt32LE(24)), 0);
  wide.writeBigUInt64LE(BigInt(header.readUInt32LE(20)), 8);
  wide.writeBigUInt64LE(0n, 16);
  const extra = extraField(0x0001, wide);
  header.writeUInt32LE(0xffffffff, 20);
  header.writeUInt32LE(0xffffffff, 24);
  header.writeUInt32LE(0xffffffff, 42);
  header.writeUInt16LE(extra.length, 30);
  const directory = Buffer.concat([header, name, extra]);
  const end64 = Buffer.alloc(56);
  end64.writeUInt32LE(0x06064b50, 0);
  end64.writeBigUInt64LE(44n, 4);
  end64.writeBigUInt64LE(1n, 24);
  end64.writeBigUInt64LE(1n, 32);
  end64.writeBigUInt64LE(BigInt(directory.length), 40);
  end64.writeBigUInt64LE(BigInt(local.length), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(local.length + directory.length), 8);
  locator.writeUInt32LE(1, 16);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(0xffff, 8);
  end.writeUInt16LE(0xffff, 10);
  end.writeUInt32LE(0xffffffff, 12);
  end.writeUInt32LE(0xffffffff, 16);
  return Buffer.concat([local, directory, end64, locator, end]);
}

describe('readZip on attacks and damage', () => {
  const first = writeZip([{ name: 'invoice.pdf', data: '%PDF-1.4 harmless' }]);

  it.skipIf(!hasPython)('lists both archives of a concatenated pair, which Python and yauzl each see only half of', () => {
    const second = [{ name: 'invoice.exe', data: 'MZ evil' }];
    for (const zip of [
      Buffer.concat([first, writeZip(second)]), // cat a.zip b.zip: Python adjusts the offsets
      Buffer.concat([first, writeZip(second, { offsetBase: first.length })]), // offsets absolute
    ]) {
      const listing = readZip(zip, LIMITS);
      expect(names(listing).sort()).toEqual(['invoice.exe', 'invoice.pdf']);
      expect(listing.problems).toContain('multiple-archives');
      const python = pythonListing(zip).map((e) => e.name);
      expect(python).toEqual(['invoice.exe']);
      expect(names(listing)).toEqual(expect.arrayContaining(python));
      expect(listing.members.find((m) => m.name === 'invoice.exe')?.data?.toString()).toBe('MZ evil');
    }
  });

  it('lists a member that only has a local header, with its data', () => {
    const zip = writeZip([
      { name: 'invoice.pdf', data: 'pdf' },
      { name: 'hidden.exe', data: 'MZ hidden', localOnly: true },
    ]);
    const listing = readZip(zip, LIMITS);
    expect(listing.problems).toEqual(['central-local-mismatch']);
    expect(listing.members.map((m) => [m.name, m.seenIn, m.data?.toString()])).toEqual([
      ['invoice.pdf', 'both', 'pdf'],
      ['hidden.exe', 'local', 'MZ hidden'],
    ]);
  });

  it('lists both names when the central directory and the local header disagree', () => {
    const listing = readZip(writeZip([{ name: 'evil.exe', centralName: 'safe.txt', data: 'MZ' }]), LIMITS);
    expect(listing.problems).toEqual(['central-local-mismatch']);
    expect(listing.members.map((m) => [m.name, m.seenIn, m.data?.toString()])).toEqual([
      ['safe.txt', 'central', 'MZ'],
      ['evil.exe', 'local', 'MZ'],
    ]);
  });

  it('lists the Info-ZIP Unicode Path name next to the raw one', () => {
    const unicodePath = extraField(0x7075, Buffer.concat([Buffer.from([1, 0, 0, 0, 0]), Buffer.from('evil.exe')]));
    const listing = readZip(writeZip([{ name: 'safe.txt', data: 'x', extra: unicodePath }]), LIMITS);
    expect(listing.problems).toEqual([]);
    expect(names(listing)).toEqual(['safe.txt', 'evil.exe']);
  });

  it('does not mistake a nested zip (stored or deflated) for a second archive', () => {
    const inner = writeZip([{ name: 'payload.exe', data: 'MZ inner' }, { name: 'notes.txt', data: 'hi' }]);
    for (const method of [METHOD_STORED, METHOD_DEFLATE]) {
      const outer = writeZip([{ name: 'readme.txt', data: 'see attached' }, { name: 'inner.zip', data: inner, method }]);
      const listing = readZip(outer, LIMITS);
      expect(listing.problems).toEqual([]);
      expect(names(listing)).toEqual(['readme.txt', 'inner.zip']);
      const nested = listing.members[1]?.data;
      expect(nested?.equals(inner)).toBe(true);
      expect(names(readZip(nested as Buffer, LIMITS))).toEqual(['payload.exe', 'notes.txt']);
    }
  });

  it('ignores zip signatures inside stored data', () => {
    const tricky = Buffer.concat([Buffer.from('PK\x03\x04 and PK\x05\x06', 'latin1'), Buffer.alloc(40)]);
    const listing = readZip(writeZip([{ name: 'sig.bin', data: tricky, method: METHOD_STORED }]), LIMITS);
    expect(listing.problems).toEqual([]);
    expect(listing.members[0]?.data?.equals(tricky)).toBe(true);
  });

  it('flags encrypted members by the flag bit and by the AES extra field, listing their names', () => {
    const aes = extraField(0x9901, Buffer.from([2, 0, 0x41, 0x45, 3, 8, 0]));
    const zip = writeZip([
      { name: 'locked.exe', data: 'ciphertext', flags: 1, method: METHOD_STORED },
      { name: 'aes.exe', data: 'ciphertext', method: 99, extra: aes },
      { name: 'open.txt', data: 'plain' },
    ]);
    const listing = readZip(zip, LIMITS);
    expect(listing.problems).toEqual(['encrypted']);
    expect(listing.members.map((m) => [m.name, m.encrypted, m.data?.toString()])).toEqual([
      ['locked.exe', true, undefined],
      ['aes.exe', true, undefined],
      ['open.txt', false, 'plain'],
    ]);
  });

  it('stops at the ratio limit, even when the header lies about the size', () => {
    const bomb = Buffer.alloc(10_000_000);
    for (const declaredSize of [undefined, 1000]) {
      const listing = readZip(writeZip([{ name: 'bomb.bin', data: bomb, declaredSize }]), LIMITS);
      expect(listing.problems).toEqual(['ratio-limit']);
      expect(listing.members[0]?.data).toBeUndefined();
    }
  });

  it('stops at the total size limit, charging the attempts', () => {
    const entries = [1, 2, 3].map((n) => ({ name: `part${n}.txt`, data: text(100) }));
    const size = text(100).length;
    const listing = readZip(writeZip(entries), { ...LIMITS, maxTotalBytes: size * 2 + 10 });
    expect(listing.problems).toEqual(['size-limit']);
    expect(listing.members.map((m) => m.data !== undefined)).toEqual([true, true, false]);
  });

  it('stops at the member limit', () => {
    const entries = Array.from({ length: 20 }, (_, n) => ({ name: `f${n}.txt`, data: `${n}` }));
    const listing = readZip(writeZip(entries), { ...LIMITS, maxMembers: 5 });
    expect(listing.members).toHaveLength(5);
    expect(listing.problems).toContain('member-limit');
  });

  it('flags members that share data (overlapping-file bombs)', () => {
    const listing = readZip(writeZip([{ name: 'a.txt', data: 'shared' }], { duplicateCentral: true }), LIMITS);
    expect(listing.problems).toContain('overlapping-members');
  });

  it('flags prepended and trailing data, and a fake end record in the comment', () => {
    const sfx = Buffer.concat([Buffer.from('MZ stub '.repeat(10)), first]);
    expect(readZip(sfx, LIMITS).problems).toEqual(['prepended-data']);
    expect(names(readZip(sfx, LIMITS))).toEqual(['invoice.pdf']);
    expect(readZip(Buffer.concat([first, Buffer.from('junk')]), LIMITS).problems).toEqual(['trailing-data']);
    const fakeEnd = Buffer.concat([Buffer.from('PK\x05\x06', 'latin1'), Buffer.alloc(18)]).toString('latin1');
    expect(readZip(writeZip([{ name: 'a.txt', data: 'x' }], { comment: fakeEnd }), LIMITS).problems).toContain('multiple-archives');
  });

  it('lists members with an unsupported method without extracting them', () => {
    const listing = readZip(writeZip([{ name: 'x.exe', data: 'BZh9...', method: 12 }]), LIMITS);
    expect(listing.problems).toEqual(['unsupported-method']);
    expect(listing.members.map((m) => [m.name, m.method, m.data])).toEqual([['x.exe', 12, undefined]]);
  });

  it('lists what it can of a truncated zip', () => {
    const zip = writeZip([{ name: 'a.txt', data: text(5) }, { name: 'b.exe', data: text(50) }]);
    const listing = readZip(zip.subarray(0, zip.length - 40), LIMITS);
    expect(listing.problems).toContain('corrupt');
    expect(names(listing)).toEqual(['a.txt', 'b.exe']);
  });

  it('says when the input is not a zip', () => {
    for (const input of [Buffer.alloc(0), Buffer.from('just text'), Buffer.from('PK\x03\x04', 'latin1')]) {
      expect(readZip(input, LIMITS)).toEqual({ members: [], problems: ['not-a-zip'] });
    }
  });
});

describe('readZip properties', () => {
  const entry: fc.Arbitrary<ZipEntry> = fc.record({
    name: fc.stringMatching(/^[a-zA-Z0-9_][a-zA-Z0-9_./ -]{0,30}$/),
    data: fc.uint8Array({ maxLength: 2000 }).map((a) => Buffer.from(a)),
    method: fc.constantFrom(METHOD_STORED, METHOD_DEFLATE),
    dataDescriptor: fc.boolean(),
  });
  const archive = fc.uniqueArray(entry, { selector: (e) => e.name, maxLength: 8 }).map((entries) => ({ entries, zip: writeZip(entries) }));

  it('lists every member of a well-formed archive with its data', () => {
    fc.assert(
      fc.property(archive, ({ entries, zip }) => {
        const listing = readZip(zip, LIMITS);
        expect(listing.problems).toEqual([]);
        expect(listing.members.map((m) => [m.name, m.seenIn, m.data])).toEqual(entries.map((e) => [e.name, 'both', e.data]));
      }),
    );
  });

  /** Never throws, stays within the limits, and is quick. */
  function checkBounded(input: Buffer, limits: ArchiveLimits): void {
    const started = performance.now();
    const listing = readZip(input, limits);
    expect(performance.now() - started).toBeLessThan(500);
    expect(listing.members.length).toBeLessThanOrEqual(limits.maxMembers);
    const extracted = new Map(listing.members.map((m) => [m.offset, m.data?.length ?? 0]));
    expect([...extracted.values()].reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(limits.maxTotalBytes);
    expect(new Set(listing.problems).size).toBe(listing.problems.length);
  }

  it('never throws on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 4000 }), (bytes) => checkBounded(Buffer.from(bytes), LIMITS)), { numRuns: 500 });
  });

  it('never throws on mutated archives (flipped bytes, cuts, spliced copies)', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant('max' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), from: fc.nat(), length: fc.nat({ max: 200 }) }),
    );
    const limits = { ...LIMITS, maxMembers: 20, maxTotalBytes: 100_000 };
    fc.assert(
      fc.property(archive, fc.array(mutation, { minLength: 1, maxLength: 8 }), ({ zip }, mutations) => {
        let bytes = Buffer.from(zip);
        for (const m of mutations) {
          if (bytes.length === 0) break;
          const at = m.at % bytes.length;
          if (m.kind === 'set') bytes[at] = m.value;
          else if (m.kind === 'max') bytes.fill(0xff, at, Math.min(at + 4, bytes.length));
          else if (m.kind === 'cut') bytes = bytes.subarray(0, at);
          else {
            const from = m.from % bytes.length;
            bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(from, from + m.length), bytes.subarray(at)]);
          }
        }
        checkBounded(bytes, limits);
      }),
      { numRuns: 1000 },
    );
  });

  it('stays linear on inputs full of signatures', () => {
    const signatures = ['PK\x03\x04', 'PK\x05\x06', 'PK\x01\x02'].map((s) => Buffer.from(s, 'latin1'));
    for (const sig of signatures) checkBounded(Buffer.concat(Array(250_000).fill(sig) as Buffer[]), LIMITS);
    // Many end records all pointing at one directory, and a directory entry repeated to the member limit.
    const zip = writeZip([{ name: 'a.txt', data: 'x' }]);
    const end = zip.subarray(zip.length - 22);
    checkBounded(Buffer.concat([zip, ...(Array(20_000).fill(end) as Buffer[])]), LIMITS);
  });
});
