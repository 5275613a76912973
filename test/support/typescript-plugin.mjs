// A plugin module that loads a plugin written in TypeScript (an example) inside the daemon's pipeline
// thread. Node 20 does not pass loaders given with --import to worker threads, so the thread registers
// tsx itself before importing the module. Options: { module: path relative to this file, options }.
import { register } from 'tsx/esm/api';

register();

export default async function typescriptPlugin({ module, options }) {
  const { default: factory } = await import(new URL(module, import.meta.url).href);
  return factory(options);
}
