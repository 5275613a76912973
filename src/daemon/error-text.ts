/**
 * An error's text for a log line: its message, with its kind where that says something ("TypeError: …").
 * Never throws, whatever was thrown (an object whose toString throws, a revoked proxy).
 */
export function errorText(err: unknown): string {
  try {
    if (!(err instanceof Error)) return String(err);
    return err.name === 'Error' || err.name === 'FilterError' ? String(err.message) : `${String(err.name)}: ${String(err.message)}`;
  } catch {
    return '(an error that cannot be shown)';
  }
}
