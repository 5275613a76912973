export { parseMessage, parseStream, parseFile, type StreamParseOptions } from './parse.js';
export { MimeMessage } from './message.js';
export { MimePart, type PartKind, type SetContentOptions } from './part.js';
export { createPart, type CreatePartOptions } from './create-part.js';
export { Header, type LineEnding } from './header.js';
export { HeaderList } from './header-list.js';
export type { Defect, DefectCode } from './defects.js';
export { DEFAULT_PARSE_OPTIONS, type ParseOptions } from './options.js';
