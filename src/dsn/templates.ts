/**
 * The human-readable part of a DSN: named templates with `${variable}` placeholders. Only whitelisted
 * variables are filled in, and every value has CR/LF (and other controls) flattened, so no value can add
 * a header line, a MIME boundary or a fake paragraph.
 */
export interface DsnTemplate {
  subject: string;
  body: string;
}

export type TemplateName = 'failure' | 'delay' | 'success' | 'spf-fail' | 'spf-softfail' | 'spf-permerror' | 'defang';

export const TEMPLATE_VARIABLES = [
  'reportingMta',
  'sender',
  'recipients',
  'subject',
  'messageId',
  'arrivalDate',
  'reason',
  'spfResult',
  'heloName',
  'clientIp',
  'defangReport',
] as const;
export type TemplateVariable = (typeof TEMPLATE_VARIABLES)[number];

const SIGNATURE = '\n\nThe mail system at ${reportingMta}\n';

export const DEFAULT_TEMPLATES: Readonly<Record<TemplateName, DsnTemplate>> = {
  failure: {
    subject: 'Undelivered Mail Returned to Sender',
    body:
      'This is the mail system at host ${reportingMta}.\n\n' +
      "I'm sorry to have to inform you that your message could not be delivered to one or more recipients. " +
      'The delivery report and your message (or its headers) are attached.\n\n' +
      'Subject: ${subject}\n\n' +
      '${recipients}\n\n' +
      'For further assistance, please send mail to postmaster. If you do so, please include this problem report.' +
      SIGNATURE,
  },
  delay: {
    subject: 'Delayed Mail (still being retried)',
    body:
      'This is the mail system at host ${reportingMta}.\n\n' +
      '####################################################################\n' +
      '# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n' +
      '####################################################################\n\n' +
      'Your message could not be delivered yet to the recipients below. Delivery will be retried.\n\n' +
      'Subject: ${subject}\n\n' +
      '${recipients}' +
      SIGNATURE,
  },
  success: {
    subject: 'Successful Mail Delivery Report',
    body:
      'This is the mail system at host ${reportingMta}.\n\n' +
      'Your message was successfully delivered to the destinations listed below, as you asked.\n\n' +
      'Subject: ${subject}\n\n' +
      '${recipients}' +
      SIGNATURE,
  },
  // The seed's policy notices (pymilter bms.py: fail.txt, softfail.txt, permerror.txt), as real DSNs.
  'spf-fail': {
    subject: 'Message rejected: sender not authorized by SPF',
    body:
      'This is the mail system at host ${reportingMta}.\n\n' +
      'A message claiming to be from you (${sender}) was refused, because the SPF record of your domain does not ' +
      'authorize the server that sent it (SPF result: ${spfResult}; HELO ${heloName}; IP ${clientIp}).\n\n' +
      'If you did send it, your domain administrator needs to update the SPF record; if you did not, someone is ' +
      'forging your address and no action is needed.\n\n' +
      'Subject: ${subject}\n\n' +
      '${recipients}' +
      SIGNATURE,
  },
  'spf-softfail': {
    subject: 'Delivery delayed: sender not confirmed by SPF',
    body:
      'This is the mail system at host ${reportingMta}.\n\n' +
      'A message claiming to be from you (${sender}) came from a server your SPF record does not fully authorize ' +
      '(SPF result: ${spfResult}; IP ${clientIp}). It is held while we confirm that you sent it.\n\n' +
      'Subject: ${subject}\n\n' +
      '${recipients}' +
      SIGNATURE,
  },
  'spf-permerror': {
    subject: 'Message rejected: SPF record error',
    body:
      'This is the mail system at host ${reportingMta}.\n\n' +
      'The SPF record of your domain could not be evaluated (${spfResult}), so a message from ${sender} was refused. ' +
      'Please ask your domain administrator to correct the record.\n\n' +
      'Subject: ${subject}\n\n' +
      '${recipients}' +
      SIGNATURE,
  },
  defang: {
    subject: 'Message rejected: dangerous content',
    body:
      'This is the mail system at host ${reportingMta}.\n\n' +
      'Your message was not delivered, because it contains content our policy does not accept:\n\n' +
      '${defangReport}\n\n' +
      'Subject: ${subject}\n\n' +
      '${recipients}\n\n' +
      'Please send the files another way, or ask the recipients to contact their mail administrator.' +
      SIGNATURE,
  },
};

/** One line of text: CR, LF and other controls flattened to spaces. */
export function oneLine(value: string): string {
  return value.replace(/[\u0000-\u0008\u000a-\u001f\u007f\u2028\u2029]+/g, ' ').trim();
}

/** Fills `${variable}` placeholders; unknown ones are left as written. Multi-line values arrive pre-built. */
export function fillTemplate(text: string, values: Partial<Record<TemplateVariable, string>>, multiLine: ReadonlySet<TemplateVariable>): string {
  return text.replace(/\$\{(\w+)\}/g, (whole, key: string) => {
    if (!(TEMPLATE_VARIABLES as readonly string[]).includes(key)) return whole;
    const value = values[key as TemplateVariable] ?? '';
    return multiLine.has(key as TemplateVariable) ? value : oneLine(value);
  });
}
