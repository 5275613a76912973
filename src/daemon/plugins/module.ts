import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MilterPlugin } from '../pipeline.js';

/** What a plugin module exports as default: a function of its options (from the config file) giving the plugin. */
export type PluginModuleFactory = (options: unknown) => MilterPlugin | Promise<MilterPlugin>;

/**
 * Loads a plugin of one's own: an ES module (path relative to the config file) whose default export is
 * a PluginModuleFactory. Checked when the daemon starts, so a broken module stops it there, not at the first message.
 */
export async function loadModulePlugin(path: string, options: unknown, baseDirectory: string): Promise<MilterPlugin> {
  const url = pathToFileURL(resolve(baseDirectory, path)).href;
  const loaded = (await import(url)) as { default?: unknown };
  if (typeof loaded.default !== 'function') throw new TypeError(`plugin module ${path}: its default export must be a function (options) => plugin`);
  const plugin = (await (loaded.default as PluginModuleFactory)(options)) as Partial<MilterPlugin> | undefined;
  if (!plugin || typeof plugin.name !== 'string' || typeof plugin.check !== 'function') throw new TypeError(`plugin module ${path}: the factory must return { name, check(message, envelope) }`);
  return plugin as MilterPlugin;
}
