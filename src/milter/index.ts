export { startMilterServer, parseListenSpec, type MilterServer, type MilterServerOptions, type ListenSpec } from './server.js';
export { FilterError, type ChangeSet, type ConnectInfo, type FilterFactory, type MilterContext, type MilterFilter, type Verdict as MilterVerdict } from './filter.js';
export { FrameReader, parseCommand, encodeResponse, encodeFrame, MilterProtocolError, type MtaCommand, type MilterResponse } from './codec.js';
export { messageFilter, transformWork, OVERSIZE_REPLY, type AdapterOptions } from './message-adapter.js';
export type { CollectedMessage, Edit, Envelope as MilterEnvelope, MessageJob, MessageOutcome, MessageTransform, MessageWork, OversizeAction, RecipientResult, TransformResult } from './message-work.js';
export { applyEdits, transformMessage } from './transform-message.js';
export { BodyBuffer, MemoryBudget, type BodyBufferOptions, type CompleteBody } from './body-buffer.js';
export { runMilter, type HarnessInput, type HarnessResult } from './harness.js';
