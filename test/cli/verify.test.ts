import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

describe('milterkit verify', () => {
  it('refuses an address that could inject commands, with exit 3 and no network use', () => {
    const result = spawnSync(process.execPath, ['dist/cli/main.js', 'verify', 'a@b.test\r\nDATA', '--json'], { encoding: 'utf8' });
    expect(result.status).toBe(3);
    expect(JSON.parse(result.stdout)).toMatchObject({ result: 'invalid', detail: 'syntax', transcript: [] });
  });

  it('exits 2 on bad arguments', () => {
    expect(spawnSync(process.execPath, ['dist/cli/main.js', 'verify'], { encoding: 'utf8' }).status).toBe(2);
    expect(spawnSync(process.execPath, ['dist/cli/main.js', 'verify', 'a@b.test', '--port', 'x'], { encoding: 'utf8' }).status).toBe(2);
  });
});
