import type { Header } from './header.js';
import { parseStructuredValue, resolveParameters, type Parameter } from './parameters.js';
import type { DecodeContext } from './decode-context.js';
import type { EncodedWordIssues } from './encoded-words.js';

/** A parsed Content-Type or Content-Disposition: lower-case value plus decoded parameters. */
export interface FieldValue {
  value: string;
  params: Parameter[];
}

const MEDIA_TYPE = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/;

export function isMediaType(value: string): boolean {
  return MEDIA_TYPE.test(value);
}

/** Parses a structured field and reports charset trouble in its parameters against the field's offset. */
export function parseField(header: Header, ctx: DecodeContext): FieldValue {
  const structured = parseStructuredValue(header.rawValue);
  const issues: EncodedWordIssues = { unknownCharsets: [], invalidWords: 0, ambiguousParameters: [] };
  const params = resolveParameters(structured.params, ctx.fallbackCharset, issues);
  for (const detail of issues.ambiguousParameters ?? []) ctx.report('ambiguous-parameter', header.offset, detail);
  for (const charset of issues.unknownCharsets) ctx.report('unknown-charset', header.offset, charset);
  if (issues.invalidWords > 0) ctx.report('invalid-encoded-word', header.offset, header.name);
  return { value: structured.value.toLowerCase().replace(/\s+/g, ''), params };
}

/** The first value of a parameter. */
export function param(field: FieldValue | undefined, name: string): string | undefined {
  return field?.params.find((p) => p.name === name)?.value;
}
