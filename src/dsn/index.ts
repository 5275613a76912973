export { createDsn, DEFAULT_MAX_RETURN_BYTES } from './create-dsn.js';
export { decideDsn, notifyAllows, type DsnDecision } from './suppression.js';
export { DEFAULT_TEMPLATES, TEMPLATE_VARIABLES, type DsnTemplate, type TemplateName, type TemplateVariable } from './templates.js';
export { DsnSuppressedError, type CreateDsnOptions, type DsnAction, type DsnEnvelope, type DsnRecipient, type DsnSuppression } from './types.js';
export { parseReply, statusFromReplyCode } from './status-codes.js';
export { sendDsn, type SendDsnOptions, type SendDsnResult } from './send-dsn.js';
export { resolveMxRoute, type MxResolver, type MxHost, type MxRoute } from '../smtp/mx-route.js';
