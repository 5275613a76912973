// Entry of the benchmarks: `tsx bench/run.ts [area ...] [--quick]` runs the named areas (default: all).
// The same script is the child process of every measurement: `run.ts --child <area> <json spec>`.
import type { Area } from './lib/area.js';
import { replyToParent } from './lib/child.js';
import { cbvArea } from './cbv.js';
import { defangArea } from './defang.js';
import { dsnArea } from './dsn.js';
import { milterArea } from './milter.js';
import { mime } from './mime.js';

const AREAS: readonly Area[] = [mime, defangArea, dsnArea, cbvArea, milterArea];

function findArea(name: string | undefined): Area {
  const area = AREAS.find((a) => a.name === name);
  if (!area) {
    console.error(`unknown bench area ${name ?? '(none)'}; known: ${AREAS.map((a) => a.name).join(', ')}`);
    process.exit(2);
  }
  return area;
}

const args = process.argv.slice(2);
if (args[0] === '--child') {
  replyToParent(await findArea(args[1]).measure(JSON.parse(args[2] ?? 'null')));
} else {
  const names = args.filter((arg) => arg !== '--quick');
  const areas = names.length > 0 ? names.map(findArea) : AREAS;
  for (const area of areas) await area.run({ quick: args.includes('--quick') });
}
