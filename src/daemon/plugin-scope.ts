import { AsyncLocalStorage } from 'node:async_hooks';
import type { Envelope } from '../milter/message-work.js';

/**
 * Which plugin, working on which message, the code running now belongs to. Node carries it into every
 * timer, callback and promise that code starts, so that a throw in a plugin's timer or a rejection it
 * never awaited, caught by the process's last-resort handlers, still names the plugin and fails the
 * right message.
 */
export interface PluginScope {
  plugin: string;
  /** Undefined while the plugin is being built (a module's factory). */
  envelope: Readonly<Envelope> | undefined;
}

const scopes = new AsyncLocalStorage<PluginScope>();

export function inPluginScope<T>(scope: PluginScope, run: () => T): T {
  return scopes.run(scope, run);
}

export function currentPluginScope(): PluginScope | undefined {
  return scopes.getStore();
}
