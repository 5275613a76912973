import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { simpleParser } from 'mailparser';
import { describe, expect, it } from 'vitest';
import { createDsn, DsnSuppressedError, parseMessage, type CreateDsnOptions, type TemplateName } from '../../src/index.js';

const GOLDEN = fileURLToPath(new URL('../../fixtures/dsn/', import.meta.url));
const ORIGINAL = Buffer.from(
  'Return-Path: <alice@example.com>\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.org, carol@example.org\r\n' +
    'Subject: Quarterly figures\r\nMessage-ID: <q3@example.com>\r\nReferences: <q2@example.com>\r\nMIME-Version: 1.0\r\n' +
    'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello — the figures are attached.\r\n',
);

/** Fixed clock, ids and boundary: the output is reproducible byte for byte. */
function options(overrides: Partial<CreateDsnOptions> = {}): CreateDsnOptions {
  return {
    original: ORIGINAL,
    reportingMta: 'mx.example.org',
    envelope: { mailFrom: 'alice@example.com' },
    recipients: [
      {
        finalRecipient: 'bob@example.org',
        action: 'failed',
        remoteMta: 'mail.example.org',
        diagnosticCode: '550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table',
        lastAttemptDate: new Date(Date.UTC(2026, 10, 24, 12, 4, 0)),
      },
    ],
    arrivalDate: new Date(Date.UTC(2026, 10, 24, 12, 0, 0)),
    date: new Date(Date.UTC(2026, 10, 24, 12, 5, 0)),
    messageId: '<dsn.1@mx.example.org>',
    boundary: 'dsn-boundary-1',
    ...overrides,
  };
}

const CASES: Record<string, CreateDsnOptions> = {
  failure: options(),
  'failure-envid-orcpt': options({
    envelope: { mailFrom: 'alice@example.com', envId: 'QQ+2B314159' },
    recipients: [{ finalRecipient: 'bob@example.org', originalRecipient: 'rfc822;Bob+2Bmail@example.org', action: 'failed', status: '5.2.2', diagnosticCode: '552 5.2.2 mailbox full' }],
  }),
  delay: options({
    recipients: [{ finalRecipient: 'carol@example.org', action: 'delayed', diagnosticCode: '451 4.7.1 greylisted, try again later', willRetryUntil: new Date(Date.UTC(2026, 10, 29)) }],
  }),
  success: options({ recipients: [{ finalRecipient: 'bob@example.org', action: 'delivered', notify: 'SUCCESS,FAILURE', status: '2.0.0' }] }),
  'headers-only-ret-hdrs': options({ envelope: { mailFrom: 'alice@example.com', ret: 'HDRS' } }),
  'headers-only-size-limit': options({ maxReturnBytes: 100 }),
  smtputf8: options({
    envelope: { mailFrom: 'アリス@例え.jp', smtputf8: true },
    recipients: [{ finalRecipient: 'ボブ@例え.jp', action: 'failed', diagnosticCode: '550 5.1.1 ユーザーがいません' }],
  }),
  'utf8-address-without-smtputf8': options({ recipients: [{ finalRecipient: 'josé@example.org', action: 'failed', status: '5.1.1' }] }),
  ...Object.fromEntries(
    (['spf-fail', 'spf-softfail', 'spf-permerror', 'defang'] as TemplateName[]).map((template) => [
      template,
      options({
        template,
        variables: { spfResult: 'fail (not permitted)', heloName: 'mail.bad.example', clientIp: '192.0.2.7', defangReport: '2 replace banned-extension (exe: invoice.exe)' },
      }),
    ]),
  ),
};

/** Python's email package: per-recipient groups of each delivery-status part, and the part types. */
function parseWithPython(dsn: Buffer): { types: string[]; groups: Record<string, string>[] } {
  const script = `
import email, json, sys
from email import policy
msg = email.message_from_bytes(sys.stdin.buffer.read(), policy=policy.compat32)
types = [p.get_content_type() for p in msg.walk()]
groups = []
for p in msg.walk():
    if p.get_content_type() == 'message/delivery-status':
        groups = [dict((k.lower(), ' '.join(v.split())) for k, v in block.items()) for block in p.get_payload()]
print(json.dumps({'types': types, 'groups': groups}))
`;
  return JSON.parse(execFileSync('python3', ['-c', script], { input: dsn, encoding: 'utf8' })) as { types: string[]; groups: Record<string, string>[] };
}

/** Our own tree: the delivery-status part split into field groups. */
function groupsWithOurParser(dsn: Buffer): Record<string, string>[] {
  const part = [...parseMessage(dsn).walk()].find((p) => /^message\/(?:global-)?delivery-status$/.test(p.contentType));
  const text = part?.content().toString('utf8').replace(/\r?\n[ \t]+/g, ' ') ?? '';
  return text
    .split(/\r?\n\r?\n/)
    .filter((block) => block.trim() !== '')
    .map((block) => Object.fromEntries(block.split(/\r?\n/).filter((line) => line !== '').map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim().replace(/\s+/g, ' ')])));
}

describe('createDsn', () => {
  for (const [name, opts] of Object.entries(CASES)) {
    it(`${name}: matches its golden file and parses everywhere`, async () => {
      const dsn = createDsn(opts);
      const golden = `${GOLDEN}${name}.eml`;
      if (process.env.UPDATE_GOLDEN || !existsSync(golden)) {
        mkdirSync(GOLDEN, { recursive: true });
        writeFileSync(golden, dsn);
      }
      expect(dsn.equals(readFileSync(golden))).toBe(true);

      const ours = parseMessage(dsn);
      expect(ours.defects).toEqual([]);
      expect(ours.root.contentType).toBe('multipart/report');
      expect(ours.root.contentTypeParams.get('report-type')).toBe('delivery-status');
      expect(ours.root.children.length).toBe(3);
      expect(ours.headers.get('auto-submitted')).toBe('auto-replied');

      const mail = await simpleParser(dsn);
      expect(mail.subject).toBe(ours.headers.get('subject'));
      expect(mail.to && !Array.isArray(mail.to) ? mail.to.value[0]?.address : undefined).toBe(opts.envelope.mailFrom);

      const groups = groupsWithOurParser(dsn);
      expect(groups[0]?.['reporting-mta']).toBe('dns; mx.example.org');
      expect(groups.slice(1).map((g) => g['action'])).toEqual(opts.recipients.filter((r) => r.action !== 'delivered' || r.notify?.includes('SUCCESS')).map((r) => r.action));
      if (!opts.envelope.smtputf8) {
        const python = parseWithPython(dsn);
        expect(python.types.slice(0, 3)).toEqual(['multipart/report', 'text/plain', 'message/delivery-status']);
        expect(python.groups).toEqual(groups);
      }
    });
  }

  it('puts each RFC 3464 field where it belongs, and no field that does not apply', () => {
    const [message, recipient] = groupsWithOurParser(createDsn(CASES['failure-envid-orcpt'] as CreateDsnOptions));
    expect(message).toEqual({ 'original-envelope-id': 'QQ+314159', 'reporting-mta': 'dns; mx.example.org', 'arrival-date': 'Tue, 24 Nov 2026 12:00:00 +0000' });
    expect(recipient).toEqual({
      'original-recipient': 'rfc822; Bob+mail@example.org',
      'final-recipient': 'rfc822; bob@example.org',
      action: 'failed',
      status: '5.2.2',
      'diagnostic-code': 'smtp; 552 5.2.2 mailbox full',
    });
    const [, plain] = groupsWithOurParser(createDsn(CASES.failure as CreateDsnOptions));
    expect(Object.keys(plain ?? {})).toEqual(['final-recipient', 'action', 'status', 'remote-mta', 'diagnostic-code', 'last-attempt-date']);
    const [, delayed] = groupsWithOurParser(createDsn(CASES.delay as CreateDsnOptions));
    expect(delayed?.['will-retry-until']).toBe('Sun, 29 Nov 2026 00:00:00 +0000');
    expect(delayed?.status).toBe('4.7.1');
  });

  it('returns the original whole, or its headers when asked or too big: never a cut message', async () => {
    const whole = parseMessage(createDsn(CASES.failure as CreateDsnOptions));
    expect(whole.part('3')?.contentType).toBe('message/rfc822');
    expect(whole.part('3')?.content().equals(ORIGINAL)).toBe(true);
    for (const name of ['headers-only-ret-hdrs', 'headers-only-size-limit']) {
      const headers = parseMessage(createDsn(CASES[name] as CreateDsnOptions)).part('3');
      expect(headers?.contentType).toBe('text/rfc822-headers');
      expect(headers?.content().toString()).toBe(ORIGINAL.toString().split('\r\n\r\n')[0] + '\r\n');
    }
  });

  it('uses RFC 6533 types and utf-8 addresses for SMTPUTF8 originals, xtext in 7-bit DSNs', () => {
    const global = parseMessage(createDsn(CASES.smtputf8 as CreateDsnOptions));
    expect([...global.walk()].map((p) => p.contentType).slice(0, 4)).toEqual(['multipart/report', 'text/plain', 'message/global-delivery-status', 'message/global']);
    expect(groupsWithOurParser(createDsn(CASES.smtputf8 as CreateDsnOptions))[1]?.['final-recipient']).toBe('utf-8; ボブ@例え.jp');
    expect(groupsWithOurParser(createDsn(CASES['utf8-address-without-smtputf8'] as CreateDsnOptions))[1]?.['final-recipient']).toBe('utf-8; jos\\x{E9}@example.org');
  });

  it('never bounces a bounce, and honours NOTIFY', () => {
    const refused = (overrides: Partial<CreateDsnOptions>): string => {
      try {
        createDsn(options(overrides));
        return 'sent';
      } catch (err) {
        return err instanceof DsnSuppressedError ? err.reason : String(err);
      }
    };
    expect(refused({ envelope: { mailFrom: '' } })).toBe('null-sender');
    expect(refused({ envelope: { mailFrom: '<>' } })).toBe('null-sender');
    expect(refused({ envelope: { mailFrom: 'MAILER-DAEMON@example.com' } })).toBe('mailer-daemon');
    expect(refused({ original: createDsn(options()) })).toBe('original-is-dsn');
    expect(refused({ original: Buffer.from('Auto-Submitted: auto-replied\r\nSubject: out of office\r\n\r\naway') })).toBe('auto-submitted');
    expect(refused({ original: Buffer.from('Auto-Submitted: no\r\nSubject: x\r\n\r\nx') })).toBe('sent');
    expect(refused({ recipients: [{ finalRecipient: 'b@x.org', action: 'failed', status: '5.1.1', notify: 'NEVER' }] })).toBe('notify-excluded');
    expect(refused({ recipients: [{ finalRecipient: 'b@x.org', action: 'delayed', status: '4.4.1', notify: 'FAILURE' }] })).toBe('notify-excluded');
    expect(refused({ recipients: [{ finalRecipient: 'b@x.org', action: 'delivered', status: '2.0.0' }] })).toBe('notify-excluded');
    const mixed = createDsn(options({ recipients: [{ finalRecipient: 'a@x.org', action: 'failed', status: '5.1.1', notify: 'NEVER' }, { finalRecipient: 'b@x.org', action: 'failed', status: '5.1.1' }] }));
    expect(groupsWithOurParser(mixed).slice(1).map((g) => g['final-recipient'])).toEqual(['rfc822; b@x.org']);
  });

  it('keeps status codes consistent with actions and reply codes', () => {
    expect(() => createDsn(options({ recipients: [{ finalRecipient: 'b@x.org', action: 'failed', status: '5.1', diagnosticCode: '550 x' }] }))).toThrow(RangeError);
    expect(() => createDsn(options({ recipients: [{ finalRecipient: 'b@x.org', action: 'failed', status: '4.1.1', diagnosticCode: '550 x' }] }))).toThrow(/disagrees/);
    expect(() => createDsn(options({ recipients: [{ finalRecipient: 'b@x.org', action: 'delayed', status: '5.1.1' }] }))).toThrow(/does not fit/);
    // An enhanced code whose class disagrees with the reply code is ignored; the reply code is mapped instead.
    const [, mapped] = groupsWithOurParser(createDsn(options({ recipients: [{ finalRecipient: 'b@x.org', action: 'failed', diagnosticCode: '550 4.7.1 odd server' }] })));
    expect(mapped?.status).toBe('5.2.0');
  });

  it('refuses header and structure injection through every variable', () => {
    const evil = 'x\r\nBcc: victim@example.net\r\n\r\n--dsn-boundary-1\r\nContent-Type: text/html\r\n\r\n<script>';
    const dsn = createDsn(
      options({
        original: Buffer.from(`Subject: ${'hi'}\r\nMessage-ID: <a@b>\r\n\r\nbody`),
        envelope: { mailFrom: `alice@example.com\r\nBcc: victim@example.net`, envId: 'id+0D+0ABcc:+20x' },
        recipients: [{ finalRecipient: `bob@example.org${evil}`, originalRecipient: `rfc822;b+0D+0Ax`, action: 'failed', remoteMta: `h${evil}`, diagnosticCode: `550 5.1.1 ${evil}` }],
        variables: { spfResult: evil, heloName: evil, clientIp: evil, defangReport: evil, reason: evil },
        template: 'spf-fail',
        boundary: 'dsn-boundary-2',
      }),
    );
    const msg = parseMessage(dsn);
    expect(msg.defects).toEqual([]);
    expect(msg.headers.getAll('bcc')).toEqual([]);
    expect([...msg.walk()].map((p) => p.contentType)).toEqual(['multipart/report', 'text/plain', 'message/delivery-status', 'message/rfc822', 'text/plain']);
    expect(dsn.toString()).not.toMatch(/^Bcc:/m);
    expect(dsn.toString()).not.toMatch(/^--dsn-boundary-1/m);
    for (const group of groupsWithOurParser(dsn)) expect(Object.keys(group)).not.toContain('bcc');
  });
});
