import { describe, expect, it } from 'vitest';
import { customFilter } from '../../examples/custom-milter.js';
import { parseMessage, runMilter } from '../../src/index.js';

const message = (subject: string) => Buffer.from(`From: a@example.com\r\nTo: b@example.org\r\nSubject: ${subject}\r\n\r\nHello\r\n`);

describe('examples/custom-milter with the test harness', () => {
  it('adds its header to ordinary mail', async () => {
    const result = await runMilter(customFilter, { message: message('hi'), sender: 'a@example.com', recipients: ['b@example.org'], macros: { E: { i: 'ABC123' } } });
    expect(result.verdict).toBe('continue');
    const delivered = parseMessage(result.delivered ?? Buffer.alloc(0));
    expect(delivered.headers.get('x-scanned-by')).toBe('custom-milter (queue ABC123)');
    expect(delivered.headers.get('subject')).toBe('hi');
    expect(delivered.root.text()).toBe('Hello\r\n');
  });

  it('refuses what it should, with its reply', async () => {
    const result = await runMilter(customFilter, { message: message('Unsubscribe me from life'), sender: 'a@example.com', recipients: ['b@example.org'] });
    expect(result).toMatchObject({ verdict: 'reject', stage: 'eom', reply: '550 5.7.1 We do not deliver that here', delivered: undefined });
  });
});
