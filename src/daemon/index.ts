export { pipeline, type MilterPlugin, type PipelineState, type PluginResult, type MessageLog, type MessageVerdict } from './pipeline.js';
export { defangPlugin, DEFANG_REJECT_REPLY } from './plugins/defang.js';
export { cbvPlugin, CBV_REJECT_REPLY, CBV_TEMPFAIL_REPLY, type CbvPluginOptions } from './plugins/cbv.js';
export { notifyPlugin, type NotifyPluginOptions, type NoticeLog } from './plugins/notify.js';
export { loadModulePlugin, type PluginModuleFactory } from './plugins/module.js';
export { DEFAULT_CONFIG, validateConfig, readConfigFile, buildPipeline, type MilterConfig, type PluginConfig } from './config.js';
export { MilterStats, type StatsSnapshot } from './stats.js';
