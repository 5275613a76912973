/**
 * RFC 3463 enhanced status codes and their agreement with SMTP reply codes (RFC 2034 4: "a 2xx
 * response must incorporate a 2.X.X code").
 */
const ENHANCED = /^([245])\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;
const IN_REPLY = /^([245])\d\d[ -]([245]\.(?:0|[1-9]\d{0,2})\.(?:0|[1-9]\d{0,2}))\b/;

export function isEnhancedStatus(status: string): boolean {
  return ENHANCED.test(status);
}

/** Sendmail's smtptodsn(): a reply code without an enhanced code, as a status. */
const BASIC_TO_ENHANCED: Readonly<Record<number, string>> = {
  450: '4.2.0',
  451: '4.3.0',
  452: '4.3.1',
  500: '5.5.2',
  501: '5.5.4',
  502: '5.5.1',
  503: '5.5.1',
  504: '5.5.4',
  550: '5.2.0',
  551: '5.1.6',
  552: '5.2.2',
  553: '5.1.0',
  554: '5.0.0',
};

export function statusFromReplyCode(code: number): string {
  return BASIC_TO_ENHANCED[code] ?? `${Math.floor(code / 100)}.0.0`;
}

/** The reply code and enhanced status found at the start of an SMTP reply ("550 5.1.1 no such user"). */
export function parseReply(reply: string): { code: number | undefined; status: string | undefined } {
  const m = /^([245]\d\d)/.exec(reply.trim());
  const code = m ? Number(m[1]) : undefined;
  const enhanced = IN_REPLY.exec(reply.trim());
  // The enhanced code only counts when its class agrees with the reply code.
  const status = enhanced && code !== undefined && enhanced[2]?.[0] === String(code)[0] ? enhanced[2] : undefined;
  return { code, status };
}
