import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// The built command, as installed by npm (npm test builds first).
const cli = 'dist/cli/main.js';

describe('milterkit inspect', () => {
  it('prints the tree with paths, types, sizes, names and defects', () => {
    const out = execFileSync(process.execPath, [cli, 'inspect', 'fixtures/mime/nested-rfc822.eml'], { encoding: 'utf8' });
    const lines = out.trim().split('\n');
    expect(lines[0]).toMatch(/^\(root\) {2}multipart\/mixed {2}\d+ B$/);
    expect(lines.some((l) => /^ {4}2\.1 {2}multipart\/mixed/.test(l))).toBe(true);
    expect(out).toContain('"Zahlen Übersicht.csv"');
  });

  it('prints JSON with --json, defects included', () => {
    const out = execFileSync(process.execPath, [cli, 'inspect', '--json', 'fixtures/mime/missing-close-boundary.eml'], { encoding: 'utf8' });
    const report = JSON.parse(out) as { parts: { path: string; contentType: string }[]; defects: { code: string }[] };
    expect(report.parts.map((p) => p.path)).toEqual(['', '1', '2']);
    expect(report.defects.map((d) => d.code)).toEqual(['missing-close-boundary']);
  });

  it('escapes bidi controls in names so a terminal cannot be fooled', () => {
    const out = execFileSync(process.execPath, [cli, 'inspect', '-'], {
      encoding: 'utf8',
      input: "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''a%E2%80%AEfdp.exe\r\n\r\nMZ",
    });
    expect(out).toContain('"a\\u202efdp.exe"');
  });

  it('exits 2 with usage on bad arguments and 1 on a missing file', () => {
    expect(spawnSync(process.execPath, [cli, 'inspect']).status).toBe(2);
    expect(spawnSync(process.execPath, [cli, 'frobnicate']).status).toBe(2);
    const missing = spawnSync(process.execPath, [cli, 'inspect', 'no/such/file.eml'], { encoding: 'utf8' });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('no such file');
  });
});
