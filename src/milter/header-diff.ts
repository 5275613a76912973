import { formatField, type Header } from '../mime/header.js';
import type { ChangeSet } from './filter.js';

/** A generated field's value as the milter protocol wants it: after "Name:", folded with LF only. */
function milterValue(header: Header): string {
  const field = formatField(header.name, header.value, '\n');
  return field.slice(header.name.length + 1).replace(/\n$/, '').replace(/^ /, '');
}

/**
 * The header edits that turn `before` (the fields as the MTA sent them) into `after` (as the transform
 * left them), in milter terms. A new field in the place of a removed one of that name (`headers.set`)
 * changes it; a new field above every field that stays goes on top (a prepended trace or
 * Authentication-Results field, the forged one removed); any other new field goes at the end: where
 * between the original fields the MTA would put it, a milter cannot know.
 */
export function sendHeaderChanges(before: readonly Header[], after: readonly Header[], changes: ChangeSet): void {
  const original = new Set(before);
  const kept = new Set(after.filter((header) => original.has(header)));
  // A field's place: how many kept originals are above it (a removed original: where it was).
  const places = (fields: readonly Header[]): number[] => {
    let above = 0;
    return fields.map((header) => (kept.has(header) ? above++ : above));
  };
  // Removed originals, numbered per name as the MTA sent them (the index CHGHEADER uses).
  const removed: { header: Header; index: number; place: number }[] = [];
  const seen = new Map<string, number>();
  const beforePlaces = places(before);
  before.forEach((header, i) => {
    const index = (seen.get(header.key) ?? 0) + 1;
    seen.set(header.key, index);
    if (!kept.has(header)) removed.push({ header, index, place: beforePlaces[i] as number });
  });
  const afterPlaces = places(after);
  const fresh: { header: Header; position: number }[] = [];
  const settled: number[] = [];
  after.forEach((header, position) => {
    if (kept.has(header)) return void settled.push(position);
    if (header.isInvalid) return;
    const slot = removed.findIndex((r) => r.header.key === header.key && r.place === afterPlaces[position]);
    if (slot < 0) return void fresh.push({ header, position });
    const { index } = removed.splice(slot, 1)[0] as { index: number };
    changes.changeHeader(header.name, index, milterValue(header));
    settled.push(position);
  });
  const firstSettled = settled.length > 0 ? Math.min(...settled) : -1;
  const onTop = fresh.filter(({ position }) => position < firstSettled).map(({ header }) => header);
  for (const { header, position } of fresh) if (!(position < firstSettled)) changes.addHeader(header.name, milterValue(header));
  // Each at index 0, last first: Postfix's index 1 is below the Received: field it adds itself.
  for (const header of onTop.reverse()) changes.insertHeader(0, header.name, milterValue(header));
  for (const { header, index } of removed) changes.deleteHeader(header.name, index);
}
