import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MilterPlugin } from '../pipeline.js';
import { inPluginScope } from '../plugin-scope.js';

/** What a plugin module exports as default: a function of its options (from the config file) giving the plugin. */
export type PluginModuleFactory = (options: unknown) => MilterPlugin | Promise<MilterPlugin>;

/**
 * Loads a plugin of one's own: an ES module (path relative to the config file) whose default export is
 * a PluginModuleFactory. Checked when the daemon starts, so a broken module stops it there, not at the first message.
 */
export async function loadModulePlugin(path: string, options: unknown, baseDirectory: string): Promise<MilterPlugin> {
  const url = pathToFileURL(resolve(baseDirectory, path)).href;
  // What the module starts as it loads (a timer that refreshes a list) is its own: a failure there names it.
  const scope = { plugin: path, envelope: undefined };
  const loaded = (await inPluginScope(scope, () => import(url))) as { default?: unknown };
  if (typeof loaded.default !== 'function') throw new TypeError(`plugin module ${path}: its default export must be a function (options) => plugin`);
  const factory = loaded.default as PluginModuleFactory;
  const plugin = (await inPluginScope(scope, () => factory(options))) as Partial<MilterPlugin> | undefined;
  if (!plugin || typeof plugin.name !== 'string' || typeof plugin.check !== 'function') throw new TypeError(`plugin module ${path}: the factory must return { name, check(message, envelope) }`);
  for (const hook of ['begin', 'recipient', 'close'] as const) if (plugin[hook] !== undefined && typeof plugin[hook] !== 'function') throw new TypeError(`plugin module ${path}: ${hook} must be a function`);
  return plugin as MilterPlugin;
}
