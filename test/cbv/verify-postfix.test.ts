import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAddresses } from '../../src/index.js';
import { startPostfix, type PostfixInstance } from '../support/postfix.js';
import { fakeResolver } from './scripted-smtp.js';

let postfix: PostfixInstance;
beforeAll(async () => {
  postfix = await startPostfix({ users: ['alice', 'bob'] });
});
afterAll(async () => postfix?.stop());

describe('verifyAddress against a real Postfix (smtpd_reject_unlisted_recipient)', () => {
  it('finds listed users valid and unlisted ones invalid, in one session, without sending anything', async () => {
    const resolver = fakeResolver({ 'lab.test': { mx: [{ exchange: 'mail.lab.test', priority: 10 }], a: { 'mail.lab.test': ['127.0.0.1'] } } });
    const results = await verifyAddresses(['alice@lab.test', 'nobody@lab.test', 'bob@lab.test'], {
      resolver,
      port: postfix.port,
      allowLoopback: true,
      heloName: 'verifier.milterkit.test',
      cache: false,
    });
    expect(results.map((r) => r.result)).toEqual(['valid', 'invalid', 'valid']);
    expect(results[1]).toMatchObject({ code: 550, enhancedStatus: '5.1.1' });
    expect(results[1]?.message).toContain('Recipient address rejected');
    const commands = results[0]?.transcript.filter((l) => l.startsWith('C: ')) ?? [];
    expect(commands.some((c) => c.startsWith('C: DATA'))).toBe(false);
    expect(commands.filter((c) => c === 'C: RSET')).toHaveLength(2);
    // Nothing was delivered: a probe never sends a message.
    expect(await postfix.delivered('alice')).toEqual([]);
  });
});
