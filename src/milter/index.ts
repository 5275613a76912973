export { startMilterServer, parseListenSpec, type MilterServer, type MilterServerOptions, type ListenSpec } from './server.js';
export type { ChangeSet, ConnectInfo, FilterFactory, MilterContext, MilterFilter, Verdict as MilterVerdict } from './filter.js';
export { FrameReader, parseCommand, encodeResponse, encodeFrame, MilterProtocolError, type MtaCommand, type MilterResponse } from './codec.js';
export { messageFilter, type AdapterOptions, type Envelope as MilterEnvelope, type MessageTransform, type TransformResult } from './message-adapter.js';
export { defangTransform } from './defang-transform.js';
export { runMilter, type HarnessInput, type HarnessResult } from './harness.js';
