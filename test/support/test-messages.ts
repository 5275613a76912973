import { expect } from 'vitest';
import type { MimeMessage } from '../../src/index.js';
import { sendMessage, smtpDialogue } from './smtp-client.js';

/**
 * The messages the daemon's end-to-end tests send through an MTA (Postfix, Sendmail), and what must come
 * out of them: one set, so that every MTA is held to the same scenario.
 */

/** A PE header, base64: enough for the content sniffer to call it an executable. */
export const EXE_BASE64 = Buffer.from('MZ\x90\x00\x03\x00\x00\x00PE\x00\x00', 'latin1').toString('base64');

/** A text part and an `invoice.exe` attachment. */
export function dangerousMessage(subject: string, options: { from?: string; to?: string; text?: string } = {}): string {
  const { from = 'a@example.com', to = 'alice@lab.test', text = 'See attached.' } = options;
  return [
    `From: ${from}`, `To: ${to}`, `Subject: ${subject}`, 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b"', '',
    '--b', 'Content-Type: text/plain', '', text, '--b', 'Content-Type: application/octet-stream; name="invoice.exe"', 'Content-Transfer-Encoding: base64', '', EXE_BASE64, '--b--', '',
  ].join('\r\n');
}

export const CLEAN_MESSAGE = 'From: a@example.com\r\nTo: alice@lab.test\r\nSubject: hello\r\nMessage-ID: <c1@example.com>\r\n\r\nJust text.\r\n';
export const PARTIAL_MESSAGE = 'From: a@example.com\r\nSubject: part 1\r\nContent-Type: message/partial; id="x"; number=1; total=2\r\n\r\nfragment\r\n';
/** What the client hears for PARTIAL_MESSAGE under the default policy. */
export const POLICY_REFUSAL = '550 5.7.1 Message refused: content not accepted by policy';

/** Raw UTF-8 in the header fields, as SMTPUTF8/8BITMIME clients send them. */
export const EIGHT_BIT_MESSAGE = Buffer.from(
  'From: Jürgen <j@example.com>\r\nTo: alice@lab.test\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\nMessage-ID: <k1@example.com>\r\nSubject: Grüße aus Köln — ünïcödé\r\n\r\nHallo, schöne Grüße.\r\n',
  'utf8',
);

/** A body of about `bytes` bytes of ordinary 76-column text lines. */
export function bigText(bytes: number): string {
  const line = `${'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(2).slice(0, 76)}\r\n`;
  return line.repeat(Math.ceil(bytes / line.length));
}

/**
 * Sends CLEAN_MESSAGE, dangerousMessage('invoice') and PARTIAL_MESSAGE to the MTA listening on `port`,
 * each in its own session: the first two are accepted, the third refused by the daemon's policy.
 */
export async function sendCleanDangerousPartial(port: number): Promise<void> {
  expect(await sendMessage(port, CLEAN_MESSAGE)).toMatch(/^250 /);
  expect(await sendMessage(port, dangerousMessage('invoice'))).toMatch(/^250 /);
  expect(await sendMessage(port, PARTIAL_MESSAGE)).toBe(POLICY_REFUSAL);
}

/**
 * EIGHT_BIT_MESSAGE, then dangerousMessage('Rechnung für Sie') with 8-bit header fields too, in one SMTP
 * session; returns the MTA's replies (the end-of-DATA ones say whether both were queued).
 */
export function sendTwoOnOneConnection(port: number): Promise<string[]> {
  return smtpDialogue(port, [
    'EHLO client.test',
    'MAIL FROM:<j@example.com> BODY=8BITMIME', 'RCPT TO:<alice@lab.test>', 'DATA', Buffer.concat([EIGHT_BIT_MESSAGE, Buffer.from('.')]),
    'MAIL FROM:<a@example.com>', 'RCPT TO:<alice@lab.test>', 'DATA', `${dangerousMessage('Rechnung für Sie')}.`,
    'QUIT',
  ]);
}

/**
 * CLEAN_MESSAGE and dangerousMessage('invoice') as delivered: the first untouched, the second with its
 * attachment replaced and the report header. `lineEnd`: how the MTA stores lines.
 */
export function expectCleanAndDefanged(clean: MimeMessage | undefined, defanged: MimeMessage | undefined, lineEnd: '\n' | '\r\n'): void {
  expect(clean?.headers.get('subject')).toBe('hello');
  expect(clean?.headers.get('x-milterkit-defang')).toBeUndefined();
  expect(clean?.root.text()).toBe(`Just text.${lineEnd}`);
  expect(defanged?.headers.get('x-milterkit-defang')).toBe('changed; 2 replace banned-extension,executable-content');
  expect(defanged?.part('1')?.text()).toBe('See attached.');
  expect(defanged?.part('2')?.filename).toBe('WARNING.txt');
  expect(defanged?.toBuffer().toString('latin1')).not.toContain(EXE_BASE64);
}
