/**
 * Prints a Markdown table padded to line up in a terminal, so the same output reads well on screen and
 * pastes into an issue. The first column is left-aligned (names), the rest right-aligned (figures).
 */
export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((title, col) => Math.max(title.length, ...rows.map((row) => (row[col] ?? '').length)));
  const line = (cells: readonly string[]) =>
    '| ' + widths.map((width, col) => (col === 0 ? (cells[col] ?? '').padEnd(width) : (cells[col] ?? '').padStart(width))).join(' | ') + ' |';
  console.log(line(header));
  console.log('|' + widths.map((width, col) => (col === 0 ? ':' : '-') + '-'.repeat(width) + (col === 0 ? '-' : ':')).join('|') + '|');
  for (const row of rows) console.log(line(row));
}
