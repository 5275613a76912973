import type { DefectCode } from './defects.js';

/** What lazy decoding needs from the tree it belongs to: the fallback charset and where defects go. */
export interface DecodeContext {
  readonly fallbackCharset: string;
  report(code: DefectCode, offset: number, detail?: string): void;
}

/** For parts that belong to no parsed message (built with createPart): nowhere to record defects. */
export const DETACHED_CONTEXT: DecodeContext = {
  fallbackCharset: 'windows-1252',
  report() {},
};
