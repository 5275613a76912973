import { readFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { validatePolicy, readPolicyFile } from '../defang/policy-file.js';
import type { PolicyInput } from '../defang/policy.js';
import { ADAPTER_DEFAULTS } from '../milter/message-adapter.js';
import type { OversizeAction } from '../milter/message-work.js';
import { SERVER_DEFAULTS } from '../milter/server.js';
import { SESSION_DEFAULTS } from '../milter/session.js';
import type { MilterPlugin } from './pipeline.js';
import { CBV_RCPT_WAIT_MS, cbvPlugin, type CbvPluginOptions } from './plugins/cbv.js';
import { defangPlugin } from './plugins/defang.js';
import { loadModulePlugin } from './plugins/module.js';
import { notifyPlugin, type NotifyPluginOptions } from './plugins/notify.js';
import { parseListenSpec } from '../milter/server.js';
import { errorText } from './error-text.js';

/** The plugin entries of a config file's "pipeline", in the order they run. */
export type PluginConfig =
  | { plugin: 'defang'; policy?: PolicyInput | string }
  | ({ plugin: 'cbv' } & Omit<CbvPluginOptions, 'resolver'>)
  | ({ plugin: 'notify' } & NotifyPluginOptions)
  | { plugin: 'module'; path: string; options?: unknown };

/** The daemon's settings: a config file (JSON), command-line flags over it, embedded defaults under it. */
export interface MilterConfig {
  listen: string;
  socketMode: string | undefined;
  socketGroup: string | undefined;
  /** What a filter error or timeout gives. Default tempfail. */
  fallback: 'tempfail' | 'reject' | 'accept';
  /** Worker processes (node:cluster) sharing the listening socket. Default 1: no cluster. */
  workers: number;
  /** A `stats` log line this often (0: never). Default 300 s. */
  statsIntervalSeconds: number;
  /** HTTP health and stats endpoint, HOST:PORT (e.g. 127.0.0.1:8891). Default none. */
  health: string | undefined;
  /** Body bytes kept in memory per message before spilling to a temporary file. Default 8 MiB. */
  memoryThresholdBytes: number;
  /** Body bytes all messages of a process keep in memory together; past it, bodies spill too. Default 128 MiB. */
  bodyMemoryBudgetBytes: number;
  /**
   * Where spilled bodies go: a directory the daemon owns (created with mode 700; refused if another user
   * owns it or others may write in it), swept of a crashed daemon's files at start. Default
   * <system temporary directory>/milterkit-<uid>.
   */
  temporaryDirectory: string;
  /** The largest message kept and filtered; past it, `oversizeAction`. Default 64 MiB. */
  maxMessageBytes: number;
  /** Default 'reject' (552 5.3.4); 'accept' passes such mail on unfiltered (logged as `unfiltered`). */
  oversizeAction: OversizeAction;
  /** Per-stage limits on a filter's work; past them, the fallback. Defaults 25 s and 250 s (end of message). */
  hookTimeoutMs: number;
  eomTimeoutMs: number;
  /** Largest milter packet accepted. Default 1 MiB. */
  maxPacketSize: number;
  /** PROGRESS to the MTA this often while an end of message is worked on (0: never). Default 5 s. */
  progressIntervalMs: number;
  /** A connection silent this long is closed (0: never). Default 7210 s, as libmilter. */
  idleTimeoutMs: number;
  /** A connection that has not negotiated this long after it was made is closed (0: never). Default 10 s. */
  negotiationTimeoutMs: number;
  /** A packet begun and not finished after this long closes its connection (0: never). Default 30 s. */
  frameTimeoutMs: number;
  /**
   * Connections at once per process; a new one past it closes the connection idle longest, and only when
   * none is idle is itself closed (the MTA applies its default action). Default 1000.
   */
  maxConnections: number;
  /** Worker threads per process that run the pipeline (never the thread that speaks to the MTAs). Default: the machine's cores, from 2 to 4. */
  threads: number;
  /** How long a thread has to answer after a message's time is up before it is terminated and replaced. Default 2 s. */
  threadGraceMs: number;
  /** How long a thread may take to build the plugins (load modules, read policies) at start or reload. Default 60 s. */
  threadStartTimeoutMs: number;
  /** Macro bytes a connection may hold; past it the connection is closed as a protocol error. Default 64 KiB. */
  maxMacroBytes: number;
  pipeline: PluginConfig[];
}

/** The embedded defaults; those of the layers below (server, session, adapter) are theirs. */
export const DEFAULT_CONFIG: Readonly<MilterConfig> = {
  listen: 'inet:8890@127.0.0.1',
  socketMode: undefined,
  socketGroup: undefined,
  fallback: SESSION_DEFAULTS.fallback,
  workers: 1,
  statsIntervalSeconds: 300,
  health: undefined,
  memoryThresholdBytes: ADAPTER_DEFAULTS.memoryThresholdBytes,
  bodyMemoryBudgetBytes: 128 * 1024 * 1024,
  temporaryDirectory: join(tmpdir(), `milterkit-${process.getuid?.() ?? 'user'}`),
  maxMessageBytes: ADAPTER_DEFAULTS.maxMessageBytes,
  oversizeAction: ADAPTER_DEFAULTS.oversizeAction,
  hookTimeoutMs: SESSION_DEFAULTS.hookTimeoutMs,
  eomTimeoutMs: SESSION_DEFAULTS.eomTimeoutMs,
  maxPacketSize: SERVER_DEFAULTS.maxPacketSize,
  progressIntervalMs: SESSION_DEFAULTS.progressIntervalMs,
  idleTimeoutMs: SERVER_DEFAULTS.idleTimeoutMs,
  negotiationTimeoutMs: SERVER_DEFAULTS.negotiationTimeoutMs,
  frameTimeoutMs: SERVER_DEFAULTS.frameTimeoutMs,
  maxConnections: SERVER_DEFAULTS.maxConnections,
  // One blocked thread leaves another; each costs about 30 MB (docs/daemon.md).
  threads: Math.min(Math.max(2, availableParallelism()), 4),
  threadGraceMs: 2000,
  threadStartTimeoutMs: 60_000,
  maxMacroBytes: SESSION_DEFAULTS.maxMacroBytes,
  pipeline: [{ plugin: 'defang' }],
};

/** Keys that a reload (SIGHUP) cannot change: they shape what the process listens on and is made of. */
export const RESTART_KEYS = ['listen', 'socketMode', 'socketGroup', 'workers', 'health', 'statsIntervalSeconds'] as const satisfies readonly (keyof MilterConfig)[];

/** A reloaded configuration as it takes effect: the keys only a restart can change keep their values, and are named. */
export function reloadedConfig(inForce: MilterConfig, loaded: MilterConfig): { config: MilterConfig; restartNeeded: string[] } {
  const restartNeeded = RESTART_KEYS.filter((key) => !isDeepStrictEqual(loaded[key], inForce[key]));
  return { config: { ...loaded, ...Object.fromEntries(RESTART_KEYS.map((key) => [key, inForce[key]])) }, restartNeeded };
}

/**
 * The least a numeric setting may be, where 0 would not mean "never" but break the daemon: no worker,
 * every hook timed out at once, every packet refused (Postfix's BODY packets alone are 64 KiB).
 */
const MINIMUM: Partial<Record<keyof MilterConfig, number>> = { workers: 1, maxMessageBytes: 1, hookTimeoutMs: 1, eomTimeoutMs: 1, maxPacketSize: 65_536, maxConnections: 1, threads: 1, threadGraceMs: 1, threadStartTimeoutMs: 1, maxMacroBytes: 1024 };
/** Node fires a timer of more than 2^31 - 1 ms after 1 ms: the largest time that means what it says. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Where a setting has a bound other than that: a body read back whole must stay under node's 2 GiB file read. */
const MAXIMUM: Partial<Record<keyof MilterConfig, number>> = { maxMacroBytes: 2 ** 30, maxMessageBytes: 2 ** 30, memoryThresholdBytes: 2 ** 30, bodyMemoryBudgetBytes: 2 ** 40, maxPacketSize: 2 ** 30, statsIntervalSeconds: Math.floor(MAX_TIMER_MS / 1000), workers: 1024, threads: 256 };

const NOTIFY_KEYS = new Set(['plugin', 'reportingMta', 'relay', 'routes', 'port', 'heloName', 'timeoutMs', 'template']);
const CBV_KEYS = new Set(['plugin', 'routes', 'header', 'rejectInvalid', 'tempfailOnTempfail', 'refuseAtRcpt', 'rcptWaitMs', 'port', 'timeoutMs', 'connectTimeoutMs', 'greetingTimeoutMs', 'commandTimeoutMs', 'heloName', 'probeSender', 'detectCatchAll', 'allowLoopback', 'allowPrivate', 'opportunisticTls', 'cache', 'ttls', 'maxConcurrentPerDomain', 'maxSessionsPerMinutePerDomain']);

/**
 * Checks a config read from JSON. As with policies, a typo must not fall back silently to a default:
 * unknown keys and wrong types are errors naming the place.
 */
export function validateConfig(value: unknown, where = 'config'): Partial<MilterConfig> {
  const fail = (message: string): never => {
    throw new Error(`${where}: ${message}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('must be an object');
  const input = value as Record<string, unknown>;
  const out: Partial<MilterConfig> = {};
  for (const [key, v] of Object.entries(input)) {
    switch (key) {
      case 'listen':
        if (typeof v !== 'string') fail('listen must be a string');
        parseListenSpec(v as string);
        out.listen = v as string;
        break;
      case 'socketMode':
        if (typeof v !== 'string' || !/^[0-7]{3,4}$/.test(v)) fail('socketMode must be an octal string such as "660"');
        out.socketMode = v as string;
        break;
      case 'socketGroup':
      case 'health':
      case 'temporaryDirectory':
        if (typeof v !== 'string' || v === '') fail(`${key} must be a string`);
        out[key] = v as string;
        break;
      case 'fallback':
        if (v !== 'tempfail' && v !== 'reject' && v !== 'accept') fail('fallback must be tempfail, reject or accept');
        out.fallback = v as MilterConfig['fallback'];
        break;
      case 'oversizeAction':
        if (v !== 'reject' && v !== 'accept') fail('oversizeAction must be reject or accept');
        out.oversizeAction = v as OversizeAction;
        break;
      case 'workers':
      case 'statsIntervalSeconds':
      case 'memoryThresholdBytes':
      case 'maxMessageBytes':
      case 'hookTimeoutMs':
      case 'eomTimeoutMs':
      case 'maxPacketSize':
      case 'progressIntervalMs':
      case 'idleTimeoutMs':
      case 'negotiationTimeoutMs':
      case 'frameTimeoutMs':
      case 'maxConnections':
      case 'bodyMemoryBudgetBytes':
      case 'threads':
      case 'threadGraceMs':
      case 'threadStartTimeoutMs':
      case 'maxMacroBytes': {
        const least = MINIMUM[key] ?? 0;
        const most = MAXIMUM[key] ?? MAX_TIMER_MS;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < least || v > most) fail(`${key} must be an integer from ${least} to ${most}`);
        out[key] = v as number;
        break;
      }
      case 'pipeline':
        if (!Array.isArray(v) || v.length === 0) fail('pipeline must be a non-empty array');
        out.pipeline = (v as unknown[]).map((entry, i) => validatePluginConfig(entry, `${where}: pipeline[${i}]`));
        break;
      default:
        fail(`unknown key "${key}"`);
    }
  }
  if (out.health !== undefined && !/^.+:\d+$/.test(out.health)) fail('health must be HOST:PORT');
  return out;
}

/**
 * Checks settings against each other, once config file and flags are merged: a connection must not be
 * closed as idle while a hook of its may still be working.
 */
export function checkConfig(config: MilterConfig): void {
  const longest = Math.max(config.hookTimeoutMs, config.eomTimeoutMs);
  if (config.idleTimeoutMs > 0 && config.idleTimeoutMs <= longest) throw new Error(`config: idleTimeoutMs (${config.idleTimeoutMs}) must be 0 or more than hookTimeoutMs and eomTimeoutMs (${longest})`);
  for (const entry of config.pipeline) {
    if (entry.plugin === 'cbv' && entry.refuseAtRcpt && (entry.rcptWaitMs ?? CBV_RCPT_WAIT_MS) >= config.hookTimeoutMs) {
      throw new Error(`config: the cbv plugin's rcptWaitMs (${entry.rcptWaitMs ?? CBV_RCPT_WAIT_MS}) must be less than hookTimeoutMs (${config.hookTimeoutMs}), past which the MTA has the fallback`);
    }
  }
}

function validatePluginConfig(value: unknown, where: string): PluginConfig {
  const fail = (message: string): never => {
    throw new Error(`${where}: ${message}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('must be an object');
  const entry = value as Record<string, unknown>;
  switch (entry.plugin) {
    case 'defang':
      for (const key of Object.keys(entry)) if (key !== 'plugin' && key !== 'policy') fail(`unknown key "${key}"`);
      if (entry.policy !== undefined && typeof entry.policy !== 'string') validatePolicy(entry.policy, `${where}.policy`);
      return entry as PluginConfig;
    case 'cbv':
      for (const key of Object.keys(entry)) if (!CBV_KEYS.has(key)) fail(`unknown key "${key}"`);
      if (entry.header !== undefined && entry.header !== false && (typeof entry.header !== 'string' || !/^[\x21-\x39\x3b-\x7e]+$/.test(entry.header))) fail('header must be a header field name or false');
      if (entry.cache !== undefined && entry.cache !== false && !(typeof entry.cache === 'string' && /^rediss?:\/\//i.test(entry.cache))) {
        fail('cache must be false or a redis:// or rediss:// URL');
      }
      if (entry.rcptWaitMs !== undefined && !(Number.isInteger(entry.rcptWaitMs) && (entry.rcptWaitMs as number) >= 1 && (entry.rcptWaitMs as number) <= MAX_TIMER_MS)) fail(`rcptWaitMs must be an integer from 1 to ${MAX_TIMER_MS}`);
      return entry as PluginConfig;
    case 'notify':
      for (const key of Object.keys(entry)) if (!NOTIFY_KEYS.has(key)) fail(`unknown key "${key}"`);
      if (entry.relay !== undefined && (typeof entry.relay !== 'object' || entry.relay === null || typeof (entry.relay as { host?: unknown }).host !== 'string')) fail('relay must be { "host": …, "port": … }');
      return entry as PluginConfig;
    case 'module':
      for (const key of Object.keys(entry)) if (!['plugin', 'path', 'options'].includes(key)) fail(`unknown key "${key}"`);
      if (typeof entry.path !== 'string' || entry.path === '') fail('path must name an ES module');
      return entry as PluginConfig;
    default:
      return fail('plugin must be "defang", "cbv", "notify" or "module"');
  }
}

/** What the command line gives the daemon: a config file, a policy file for every defang step, keys over the file. */
export interface DaemonArguments {
  configFile?: string;
  policyFile?: string;
  /** Config keys set by flags; validated like the file's. */
  flags: Record<string, unknown>;
}

/** A configuration as loaded: the settings, and where relative paths in them start. */
export interface LoadedConfig {
  config: MilterConfig;
  baseDirectory: string;
}

/**
 * The effective config: embedded defaults, then the config file, then flags; read again at each reload
 * (the file may have changed, the flags stay). Throws with the reason, naming the place.
 */
export async function loadConfig(args: DaemonArguments): Promise<LoadedConfig> {
  const file = args.configFile ? await readConfigFile(args.configFile) : { config: {}, baseDirectory: process.cwd() };
  const config: MilterConfig = { ...DEFAULT_CONFIG, ...file.config, ...validateConfig(args.flags, 'command line') };
  checkConfig(config);
  // --policy gives every defang step of the pipeline that policy file (relative to the working directory).
  if (args.policyFile) {
    const policy = resolve(args.policyFile);
    config.pipeline = config.pipeline.map((entry) => (entry.plugin === 'defang' ? { ...entry, policy } : entry));
  }
  config.temporaryDirectory = resolve(file.baseDirectory, config.temporaryDirectory);
  return { config, baseDirectory: file.baseDirectory };
}

/** Reads and checks a config file; relative paths in it (policies, modules) are relative to the file. */
export async function readConfigFile(path: string): Promise<{ config: Partial<MilterConfig>; baseDirectory: string }> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: ${errorText(err)}`);
  }
  return { config: validateConfig(parsed, path), baseDirectory: dirname(path) };
}

/** The plugins a config names, built (modules loaded, policy files read) in order; `log` gets plugins' own events (notices). */
export async function buildPipeline(entries: readonly PluginConfig[], baseDirectory: string, log: (event: string, fields: Record<string, unknown>) => void = () => {}): Promise<MilterPlugin[]> {
  const plugins: MilterPlugin[] = [];
  for (const entry of entries) {
    if (entry.plugin === 'defang') {
      const policy = typeof entry.policy === 'string' ? await readPolicyFile(resolve(baseDirectory, entry.policy)) : entry.policy;
      plugins.push(defangPlugin(policy));
    } else if (entry.plugin === 'cbv') {
      const { plugin: _, ...options } = entry;
      plugins.push(cbvPlugin(options));
    } else if (entry.plugin === 'notify') {
      const { plugin: _, ...options } = entry;
      plugins.push(notifyPlugin(options, (fields) => log('notice', fields)));
    } else plugins.push(await loadModulePlugin(entry.path, entry.options, baseDirectory));
  }
  return plugins;
}

