/** An error's text for a log line: its message, with its kind where that says something ("TypeError: …"). */
export function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.name === 'Error' || err.name === 'FilterError' ? err.message : `${err.name}: ${err.message}`;
}
