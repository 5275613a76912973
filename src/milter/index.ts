export { startMilterServer, parseListenSpec, type MilterServer, type MilterServerOptions, type ListenSpec } from './server.js';
export type { ChangeSet, ConnectInfo, FilterFactory, MilterContext, MilterFilter, Verdict as MilterVerdict } from './filter.js';
export { FrameReader, parseCommand, encodeResponse, encodeFrame, MilterProtocolError, type MtaCommand, type MilterResponse } from './codec.js';
export { messageFilter, OVERSIZE_REPLY, type AdapterOptions, type Envelope as MilterEnvelope, type MessageTransform, type OversizeAction, type TransformResult } from './message-adapter.js';
export { runMilter, type HarnessInput, type HarnessResult } from './harness.js';
